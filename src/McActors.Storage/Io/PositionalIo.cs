using Microsoft.Win32.SafeHandles;

namespace McActors.Storage.Io;

/// <summary>Positional reads that fill the whole buffer (pread may return short counts).</summary>
internal static class PositionalIo
{
    /// <summary>Reads exactly buffer.Length bytes, or fewer only at end of file; returns the count read.</summary>
    public static int ReadFully(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer[total..], offset + total);
            if (n == 0)
                break;
            total += n;
        }
        return total;
    }

    /// <summary>
    /// Reads consecutive bytes into the buffers in turn (preadv), exactly their total length, or
    /// fewer only at end of file; returns the count read. A short read continues where it stopped.
    /// </summary>
    public static long ReadFully(SafeFileHandle handle, IReadOnlyList<Memory<byte>> buffers, long offset)
    {
        long total = 0;
        foreach (var b in buffers)
            total += b.Length;
        var n = RandomAccess.Read(handle, buffers, offset);
        if (n == total || n == 0)
            return n;
        // Rare: finish buffer by buffer from where the scattered read stopped.
        long done = n, position = 0;
        foreach (var b in buffers)
        {
            if (position + b.Length <= done)
            {
                position += b.Length;
                continue;
            }
            var skip = (int)(done - position);
            var got = ReadFully(handle, b.Span[skip..], offset + done);
            done += got;
            position += b.Length;
            if (skip + got < b.Length)
                break; // end of file
        }
        return done;
    }
}
