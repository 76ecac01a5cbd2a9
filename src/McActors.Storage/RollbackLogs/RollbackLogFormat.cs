using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.IO.Hashing;

namespace McActors.Storage.RollbackLogs;

/// <summary>
/// On-disk layout of a rollback log (one file per epoch), all integers little-endian.
/// <code>
/// [0, 4096)      header
///   0   8  magic "MCRBLOG1"
///   8   4  format version (1)
///   12  4  block size (bytes)
///   16  16 volume id
///   32  8  epoch
///   40  8  lineage: the store's rollback count when the log was created
///   48  4  CRC-32 of bytes [0, 48)
///   512, 1024: two watermark slots (alternating), each
///     0 8 durable length (bytes of the file made durable before any image write they protect)
///     8 8 sequence (higher wins)
///     16 4 CRC-32 of [0, 16)
/// [4096, ...)    records, each
///   0   8  XxHash3 of the rest of the record [8, end), seeded with the epoch and volume id
///   8   4  record magic "RBRC"
///   12  4  flags (bit 0: the old block was all zeroes, no data follows)
///   16  8  block index
///   24  -  old block content (block size bytes), absent for a zero record
/// </code>
/// The watermark is what makes a damaged log detectable: bytes below it protect image writes
/// that may have reached the disk, so damage there means the image cannot be vouched for; bytes
/// above it were never synced, so a torn tail there is a crash mid-append and is cut off.
/// </summary>
internal static class RollbackLogFormat
{
    public const int HeaderSize = 4096;
    public const int FormatVersion = 1;
    public const int RecordHeaderSize = 24;
    public const uint RecordMagic = 0x43524252; // "RBRC"
    public const uint FlagZero = 1;
    private const int StaticHeaderLength = 48;
    private const int WatermarkSlotSize = 20;
    private static readonly int[] WatermarkSlots = [512, 1024];

    public static ReadOnlySpan<byte> Magic => "MCRBLOG1"u8;

    public static string FileName(long epoch) => $"epoch-{epoch:D20}.rblog";

    public static bool TryParseFileName(string fileName, out long epoch)
    {
        epoch = 0;
        return fileName.StartsWith("epoch-", StringComparison.Ordinal)
            && fileName.EndsWith(".rblog", StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(6, fileName.Length - 12), out epoch)
            && epoch > 0;
    }

    public static int RecordSize(int blockSize, bool zero) => RecordHeaderSize + (zero ? 0 : blockSize);

    public static void WriteHeader(Span<byte> header, Guid volumeId, long epoch, int blockSize, long lineage)
    {
        header[..HeaderSize].Clear();
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], blockSize);
        volumeId.TryWriteBytes(header[16..32]);
        BinaryPrimitives.WriteInt64LittleEndian(header[32..], epoch);
        BinaryPrimitives.WriteInt64LittleEndian(header[40..], lineage);
        BinaryPrimitives.WriteUInt32LittleEndian(header[StaticHeaderLength..], Crc32.HashToUInt32(header[..StaticHeaderLength]));
        WriteWatermark(header[WatermarkSlots[0]..], HeaderSize, 1);
    }

    /// <summary>Parses and checks the static header; throws a specific exception naming the problem.</summary>
    public static (Guid VolumeId, long Epoch, int BlockSize, long Lineage) ParseHeader(ReadOnlySpan<byte> header, string path)
    {
        if (header.Length < HeaderSize)
            throw new RollbackLogHeaderCorruptException(path, $"file is {header.Length} B, shorter than the {HeaderSize} B header");
        if (!header[..8].SequenceEqual(Magic))
            throw new RollbackLogHeaderCorruptException(path, "bad magic");
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(header[StaticHeaderLength..]);
        if (crc != Crc32.HashToUInt32(header[..StaticHeaderLength]))
            throw new RollbackLogHeaderCorruptException(path, "header checksum mismatch");
        var version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (version != FormatVersion)
            throw new RollbackLogHeaderCorruptException(path, $"unknown format version {version}");
        return (new Guid(header[16..32]), BinaryPrimitives.ReadInt64LittleEndian(header[32..]),
            BinaryPrimitives.ReadInt32LittleEndian(header[12..]), BinaryPrimitives.ReadInt64LittleEndian(header[40..]));
    }

    public static void WriteWatermark(Span<byte> slot, long durableLength, long sequence)
    {
        BinaryPrimitives.WriteInt64LittleEndian(slot, durableLength);
        BinaryPrimitives.WriteInt64LittleEndian(slot[8..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[16..], Crc32.HashToUInt32(slot[..16]));
    }

    public static int WatermarkSlotOffset(long sequence) => WatermarkSlots[(int)(sequence & 1)];

    public static int WatermarkSlotLength => WatermarkSlotSize;

    /// <summary>The valid watermark with the highest sequence; null if neither slot is valid.</summary>
    public static (long DurableLength, long Sequence)? ReadWatermark(ReadOnlySpan<byte> header)
    {
        (long, long)? best = null;
        foreach (var offset in WatermarkSlots)
        {
            var slot = header.Slice(offset, WatermarkSlotSize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(slot[16..]) != Crc32.HashToUInt32(slot[..16]))
                continue;
            var length = BinaryPrimitives.ReadInt64LittleEndian(slot);
            var sequence = BinaryPrimitives.ReadInt64LittleEndian(slot[8..]);
            if (sequence > 0 && (best is null || sequence > best.Value.Item2))
                best = (length, sequence);
        }
        return best;
    }

    public static ulong ChecksumSeed(Guid volumeId, long epoch)
    {
        Span<byte> id = stackalloc byte[16];
        volumeId.TryWriteBytes(id);
        return BinaryPrimitives.ReadUInt64LittleEndian(id) ^ (ulong)epoch * 0x9E3779B97F4A7C15UL;
    }

    /// <summary>Fills in a record's header (the data must already be in place after it, unless zero).</summary>
    public static void SealRecord(Span<byte> record, long blockIndex, bool zero, int blockSize, ulong seed)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(record[8..], RecordMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(record[12..], zero ? FlagZero : 0);
        BinaryPrimitives.WriteInt64LittleEndian(record[16..], blockIndex);
        var covered = record[8..RecordSize(blockSize, zero)];
        BinaryPrimitives.WriteUInt64LittleEndian(record, XxHash3.HashToUInt64(covered, (long)seed));
    }

    /// <summary>
    /// Reads the record at the start of <paramref name="bytes"/>. Returns its size, 0 if the bytes end
    /// before the record does (torn), or -1 if it is not a valid record (bad magic, flags or checksum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see RollbackLog.Scan
    public static int TryReadRecord(ReadOnlySpan<byte> bytes, int blockSize, ulong seed, long blockCount,
        out long blockIndex, out bool zero)
    {
        blockIndex = -1;
        zero = false;
        if (bytes.Length < RecordHeaderSize)
            return 0;
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]) != RecordMagic)
            return -1;
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(bytes[12..]);
        if ((flags & ~FlagZero) != 0)
            return -1;
        zero = (flags & FlagZero) != 0;
        var size = RecordSize(blockSize, zero);
        if (bytes.Length < size)
            return 0;
        if (BinaryPrimitives.ReadUInt64LittleEndian(bytes) != XxHash3.HashToUInt64(bytes[8..size], (long)seed))
            return -1;
        blockIndex = BinaryPrimitives.ReadInt64LittleEndian(bytes[16..]);
        return blockIndex >= 0 && blockIndex < blockCount ? size : -1;
    }
}
