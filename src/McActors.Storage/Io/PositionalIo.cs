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
}
