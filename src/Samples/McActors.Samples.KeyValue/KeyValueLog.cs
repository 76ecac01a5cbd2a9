using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace McActors.Samples.KeyValue;

/// <summary>One put as it lies in the log: its sequence number, key and value.</summary>
public sealed record LogRecord(long Sequence, string Key, string Value);

/// <summary>
/// The on-disk log: records one after another from offset 0, each padded to whole sectors so that
/// every record is one aligned disk write. A record:
/// <code>
/// u32 magic "KVR1" | u32 length (header + key + value) | u64 sequence | u16 key bytes | u32 value bytes
/// | key (UTF-8) | value (UTF-8) | u64 XxHash3 of everything before it | zero padding to a sector
/// </code>
/// Zeros (never written) end the log; a record that does not check is damage, not an end.
/// </summary>
public static class KeyValueLog
{
    public const int SectorSize = 512;
    public const int MaxKeyBytes = 256;
    public const int MaxValueBytes = 60 << 10; // one record stays under the data plane's 64 KiB payload
    private const uint Magic = 0x3152564B; // "KVR1"
    private const int HeaderSize = 22;
    private const int HashSize = 8;

    /// <summary>The record's bytes, sector-padded; throws <see cref="ArgumentException"/> for a key or value too large.</summary>
    public static byte[] Encode(LogRecord record)
    {
        var key = Encoding.UTF8.GetBytes(record.Key);
        var value = Encoding.UTF8.GetBytes(record.Value);
        if (key.Length is 0 or > MaxKeyBytes)
            throw new ArgumentException($"key of {key.Length} B is not 1..{MaxKeyBytes} B");
        if (value.Length > MaxValueBytes)
            throw new ArgumentException($"value of {value.Length} B is over {MaxValueBytes} B");
        var length = HeaderSize + key.Length + value.Length;
        var bytes = new byte[Padded(length + HashSize)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], length);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], record.Sequence);
        BinaryPrimitives.WriteUInt16LittleEndian(span[16..], (ushort)key.Length);
        BinaryPrimitives.WriteInt32LittleEndian(span[18..], value.Length);
        key.CopyTo(span[HeaderSize..]);
        value.CopyTo(span[(HeaderSize + key.Length)..]);
        BinaryPrimitives.WriteUInt64LittleEndian(span[length..], XxHash3.HashToUInt64(span[..length]));
        return bytes;
    }

    /// <summary>
    /// The records of <paramref name="log"/> (the bytes from offset 0) up to the first never-written
    /// sector, with the offset after the last one; throws <see cref="InvalidDataException"/> naming
    /// the offset of a damaged record.
    /// </summary>
    public static (List<LogRecord> Records, long End) Decode(ReadOnlySpan<byte> log)
    {
        var records = new List<LogRecord>();
        var offset = 0;
        while (offset + SectorSize <= log.Length && BinaryPrimitives.ReadUInt32LittleEndian(log[offset..]) is var magic && magic != 0)
        {
            var at = log[offset..];
            if (magic != Magic)
                throw new InvalidDataException($"no log record at offset {offset}: magic {magic:x8}");
            var length = BinaryPrimitives.ReadInt32LittleEndian(at[4..]);
            if (length < HeaderSize || offset + Padded(length + HashSize) > log.Length)
                throw new InvalidDataException($"log record at offset {offset} claims {length} B, past the log");
            if (XxHash3.HashToUInt64(at[..length]) != BinaryPrimitives.ReadUInt64LittleEndian(at[length..]))
                throw new InvalidDataException($"log record at offset {offset} fails its checksum");
            var keyBytes = BinaryPrimitives.ReadUInt16LittleEndian(at[16..]);
            var valueBytes = BinaryPrimitives.ReadInt32LittleEndian(at[18..]);
            if (HeaderSize + keyBytes + valueBytes != length)
                throw new InvalidDataException($"log record at offset {offset}: key and value do not add up to its length");
            records.Add(new LogRecord(BinaryPrimitives.ReadInt64LittleEndian(at[8..]),
                Encoding.UTF8.GetString(at.Slice(HeaderSize, keyBytes)),
                Encoding.UTF8.GetString(at.Slice(HeaderSize + keyBytes, valueBytes))));
            offset += Padded(length + HashSize);
        }
        return (records, offset);
    }

    /// <summary>
    /// The log's running hash after <paramref name="record"/>, given the hash of every record before
    /// it (<paramref name="previous"/>; 0 for an empty log): each record's encoding hashed with the
    /// previous hash as the seed. Equal hashes mean the same records in the same order, so a record
    /// that a later put of its key shadows in the table is still checked.
    /// </summary>
    public static ulong Chain(ulong previous, LogRecord record) =>
        XxHash3.HashToUInt64(Encode(record), unchecked((long)previous));

    private static int Padded(int bytes) => (bytes + SectorSize - 1) / SectorSize * SectorSize;
}
