using System.Buffers.Binary;
using McActors.Storage.Rollback;
using McActors.Storage.RollbackLogs;

namespace McActors.Testing;

/// <summary>
/// Damages a store's rollback log on disk, as a bad sector or a stray write would. The store
/// must be closed (disposed, or its actor stopped): an open store keeps its own view.
/// </summary>
public static class LogCorruptor
{
    /// <summary>The path of the rollback log of <paramref name="epoch"/> in a store directory.</summary>
    public static string LogPath(string storeDirectory, long epoch) =>
        Path.Combine(storeDirectory, RollbackStore.LogDirectoryName, RollbackLogFormat.FileName(epoch));

    /// <summary>Records (old blocks) in the log of <paramref name="epoch"/>, counted by walking their headers.</summary>
    public static int CountRecords(string storeDirectory, long epoch) => RecordOffsets(LogPath(storeDirectory, epoch)).Count;

    /// <summary>
    /// Flips one byte inside record <paramref name="recordIndex"/> (0 = the first) of the log of
    /// <paramref name="epoch"/>: its block content if it has one, else its block index. The
    /// record's checksum no longer matches, so recovery or a rollback throws
    /// <see cref="Storage.RollbackLogChecksumException"/>. Returns the byte offset flipped.
    /// </summary>
    public static long CorruptRecord(string storeDirectory, long epoch, int recordIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(recordIndex);
        var path = LogPath(storeDirectory, epoch);
        var records = RecordOffsets(path);
        if (recordIndex >= records.Count)
            throw new ArgumentOutOfRangeException(nameof(recordIndex), $"{path} has {records.Count} records, not {recordIndex + 1}");
        var (offset, zero) = records[recordIndex];
        // Past the 24-byte record header: the block's data, or the low byte of a zero record's block index.
        var target = offset + (zero ? 16 : RollbackLogFormat.RecordHeaderSize);
        FlipByte(path, target);
        return target;
    }

    /// <summary>Flips a byte of the log's static header (the volume id): the log's header checksum fails.</summary>
    public static void CorruptHeader(string storeDirectory, long epoch) => FlipByte(LogPath(storeDirectory, epoch), 20);

    private static void FlipByte(string path, long offset)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        var one = new byte[1];
        if (RandomAccess.Read(handle, one, offset) != 1)
            throw new IOException($"{path} ends before byte {offset}");
        one[0] ^= 0xFF;
        RandomAccess.Write(handle, one, offset);
        RandomAccess.FlushToDisk(handle);
    }

    private static List<(long Offset, bool Zero)> RecordOffsets(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < RollbackLogFormat.HeaderSize)
            throw new IOException($"{path} is shorter than a log header");
        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12));
        var records = new List<(long, bool)>();
        var at = RollbackLogFormat.HeaderSize;
        while (at + RollbackLogFormat.RecordHeaderSize <= bytes.Length
            && BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)) == RollbackLogFormat.RecordMagic)
        {
            var zero = (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12)) & RollbackLogFormat.FlagZero) != 0;
            var size = RollbackLogFormat.RecordSize(blockSize, zero);
            if (at + size > bytes.Length)
                break;
            records.Add((at, zero));
            at += size;
        }
        return records;
    }
}
