using System.Diagnostics;
using System.Net;

namespace McActors.DataPlane;

/// <summary>Result of one <see cref="DataPlaneBenchmark.RunAsync"/>: payload bytes streamed and acknowledged.</summary>
public sealed record DataPlaneBenchmarkResult(long Bytes, long Writes, int WriteSize, TimeSpan Elapsed)
{
    /// <summary>Payload throughput in MB/s (10^6 bytes).</summary>
    public double MegabytesPerSecond => Bytes / Elapsed.TotalSeconds / 1e6;

    public override string ToString() =>
        $"{Writes} writes of {WriteSize} B ({Bytes / (1024.0 * 1024):F0} MiB) in {Elapsed.TotalMilliseconds:F0} ms: {MegabytesPerSecond:F0} MB/s";
}

/// <summary>
/// Streams writes over loopback from a <see cref="DataPlaneSender"/> to a listener whose handler
/// only counts bytes: the data plane's own ceiling (framing, checksums, window, acks, TCP),
/// without storage. The clock runs from the first send to the ack of the last write.
/// </summary>
public static class DataPlaneBenchmark
{
    public static async Task<DataPlaneBenchmarkResult> RunAsync(long totalBytes, int writeSize = 64 << 10, DataPlaneOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(writeSize, 1);
        var volume = new DataPlaneVolume(Guid.NewGuid(), 4096);
        var counter = new CountingHandler();
        await using var listener = new DataPlaneListener(new IPEndPoint(IPAddress.Loopback, 0), volume, counter, options).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, volume, generation: 1, firstSequence: 1, options, cancellationToken).ConfigureAwait(false);

        var data = new byte[writeSize];
        Random.Shared.NextBytes(data);
        var writes = Math.Max(1, totalBytes / writeSize);
        var stopwatch = Stopwatch.StartNew();
        for (long sequence = 1; sequence <= writes; sequence++)
            await sender.SendWriteAsync(1, sequence, (sequence - 1) * writeSize, data, cancellationToken).ConfigureAwait(false);
        await sender.WaitForAcknowledgementAsync(writes, cancellationToken).ConfigureAwait(false);
        stopwatch.Stop();

        if (counter.Bytes != writes * writeSize)
            throw new InvalidOperationException($"receiver counted {counter.Bytes} B, {writes * writeSize} B were sent");
        return new DataPlaneBenchmarkResult(writes * writeSize, writes, writeSize, stopwatch.Elapsed);
    }

    private sealed class CountingHandler : IDataPlaneHandler
    {
        public long Bytes;

        public ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            Bytes += data.Length;
            return ValueTask.CompletedTask;
        }

        public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
