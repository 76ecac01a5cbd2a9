using McActors.Nbd;

namespace McActors.Nbd.Tests;

/// <summary>
/// An in-memory "disk" for the server tests: counts what reaches it, can fail or hold requests,
/// and keeps a flushed copy so a test can tell what a FLUSH or FUA covered.
/// </summary>
internal sealed class MemoryExport(long size) : INbdExport
{
    private readonly CancellationTokenSource _closed = new();
    private readonly Lock _lock = new();

    public byte[] Data { get; } = new byte[size];
    public byte[] Durable { get; } = new byte[size];
    public long SizeBytes => Data.Length;
    public CancellationToken Closed => _closed.Token;
    public bool FlushCoversAllConnections => true;
    public int Flushes;
    public int FuaWrites;
    public int Trims;

    /// <summary>Reads at this offset wait for <see cref="Gate"/> (to make replies come out of order).</summary>
    public long? HoldReadsAt { get; set; }
    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Requests touching this offset fail with this NBD error.</summary>
    public (long Offset, uint Error)? FailAt { get; set; }

    public void Close() => _closed.Cancel();

    public async ValueTask<byte[]> ReadAsync(long offset, int length)
    {
        Fail(offset);
        if (HoldReadsAt == offset)
            await Gate.Task;
        lock (_lock)
            return Data.AsSpan((int)offset, length).ToArray();
    }

    public ValueTask WriteAsync(long offset, byte[] data, bool fua)
    {
        Fail(offset);
        lock (_lock)
        {
            data.CopyTo(Data, offset);
            if (fua)
            {
                FuaWrites++;
                data.CopyTo(Durable, offset);
            }
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, bool fua)
    {
        Fail(offset);
        lock (_lock)
            Data.AsSpan((int)offset, (int)length).Clear();
        return fua ? FlushAsync() : ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, bool fua)
    {
        Fail(offset);
        Interlocked.Increment(ref Trims);
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync()
    {
        lock (_lock)
        {
            Flushes++;
            Data.CopyTo(Durable, 0);
        }
        return ValueTask.CompletedTask;
    }

    private void Fail(long offset)
    {
        if (FailAt is { } f && f.Offset == offset)
            throw new NbdErrorException(f.Error, "injected failure");
    }
}
