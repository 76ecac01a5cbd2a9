using System.Buffers;
using System.IO.Pipelines;

namespace McActors.Nbd;

/// <summary>Exact-length reads off a connection's pipe, shared by the handshake and transmission; a short read is a protocol violation.</summary>
internal static class NbdPipeReading
{
    public static async ValueTask<byte[]> ReadExactAsync(this PipeReader reader, int count, CancellationToken cancel)
    {
        var bytes = new byte[count];
        await reader.ReadPayloadAsync(bytes, cancel).ConfigureAwait(false);
        return bytes;
    }

    /// <summary>Fills <paramref name="into"/> from the stream, copying as bytes arrive (never buffering a whole payload twice).</summary>
    public static async ValueTask ReadPayloadAsync(this PipeReader reader, byte[] into, CancellationToken cancel)
    {
        var filled = 0;
        while (filled < into.Length)
        {
            var result = await reader.ReadAsync(cancel).ConfigureAwait(false);
            var buffer = result.Buffer;
            var take = (int)Math.Min(buffer.Length, into.Length - filled);
            buffer.Slice(0, take).CopyTo(into.AsSpan(filled));
            filled += take;
            reader.AdvanceTo(buffer.GetPosition(take));
            if (filled < into.Length && result.IsCompleted)
                throw new NbdProtocolViolation($"connection closed after {filled} of {into.Length} B");
        }
    }

    /// <summary>Reads and drops <paramref name="count"/> bytes (an oversized payload), holding none of them.</summary>
    public static async ValueTask SkipAsync(this PipeReader reader, long count, CancellationToken cancel)
    {
        while (count > 0)
        {
            var result = await reader.ReadAsync(cancel).ConfigureAwait(false);
            var take = Math.Min(result.Buffer.Length, count);
            count -= take;
            reader.AdvanceTo(result.Buffer.GetPosition(take));
            if (count > 0 && result.IsCompleted)
                throw new NbdProtocolViolation($"connection closed with {count} B of a payload still due");
        }
    }
}
