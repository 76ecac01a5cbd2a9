using System.Buffers.Binary;
using System.IO.Hashing;

namespace McActors.Guests;

/// <summary>One entry of the version table: block <see cref="Block"/> holds version <see cref="Version"/> (≥ 1).</summary>
public readonly record struct BlockVersion(long Block, uint Version);

/// <summary>
/// The checkpoint blob of the synthetic guest. Layout, little-endian:
/// <code>
///   0  u32 magic "McGS"        4  u16 format version   6  u16 reserved (0)
///   8  i64 seed               16  i64 volume size     24  i32 block size   28 u32 reserved (0)
///  32  i64 epoch              40  i64 write count     48  i64 bytes written
///  56  u64 digest             64  i64 pair count
///  72  pairs: (i64 block, u32 version) × count, blocks strictly ascending
/// end  u64 XxHash3 of every byte before it
/// </code>
/// <see cref="Parse"/> refuses damaged or truncated bytes with a <see cref="GuestStateCorruptException"/>.
/// </summary>
public sealed class GuestState
{
    public const uint Magic = 0x5347634D; // "McGS"
    public const ushort FormatVersion = 1;
    public const int HeaderSize = 72;
    public const int PairSize = 12;
    public const int ChecksumSize = 8;

    public GuestState(long seed, long volumeSizeBytes, int blockSize, long epoch, long writeCount,
        long bytesWritten, ulong digest, IReadOnlyList<BlockVersion> versions)
    {
        Seed = seed;
        VolumeSizeBytes = volumeSizeBytes;
        BlockSize = blockSize;
        Epoch = epoch;
        WriteCount = writeCount;
        BytesWritten = bytesWritten;
        Digest = digest;
        Versions = versions;
    }

    public long Seed { get; }
    public long VolumeSizeBytes { get; }
    public int BlockSize { get; }

    /// <summary>The checkpoint this state was captured at.</summary>
    public long Epoch { get; }

    public long WriteCount { get; }
    public long BytesWritten { get; }
    public ulong Digest { get; }

    /// <summary>Every block written at least once, ascending by block; blocks not listed are all zero.</summary>
    public IReadOnlyList<BlockVersion> Versions { get; }

    public long BlockCount => VolumeSizeBytes / BlockSize;

    public static void ValidateGeometry(long volumeSizeBytes, int blockSize)
    {
        if (blockSize < 512 || blockSize > (1 << 20) || (blockSize & (blockSize - 1)) != 0)
            throw new ArgumentException($"block size {blockSize} B must be a power of two between 512 B and 1 MiB");
        if (volumeSizeBytes <= 0 || volumeSizeBytes % blockSize != 0)
            throw new ArgumentException($"volume size {volumeSizeBytes} B must be positive and a multiple of the block size {blockSize} B");
    }

    public byte[] Serialize()
    {
        var blob = new byte[HeaderSize + (long)Versions.Count * PairSize + ChecksumSize];
        var s = blob.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(s[4..], FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(s[8..], Seed);
        BinaryPrimitives.WriteInt64LittleEndian(s[16..], VolumeSizeBytes);
        BinaryPrimitives.WriteInt32LittleEndian(s[24..], BlockSize);
        BinaryPrimitives.WriteInt64LittleEndian(s[32..], Epoch);
        BinaryPrimitives.WriteInt64LittleEndian(s[40..], WriteCount);
        BinaryPrimitives.WriteInt64LittleEndian(s[48..], BytesWritten);
        BinaryPrimitives.WriteUInt64LittleEndian(s[56..], Digest);
        BinaryPrimitives.WriteInt64LittleEndian(s[64..], Versions.Count);
        var at = HeaderSize;
        foreach (var pair in Versions)
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[at..], pair.Block);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(at + 8)..], pair.Version);
            at += PairSize;
        }
        BinaryPrimitives.WriteUInt64LittleEndian(s[at..], XxHash3.HashToUInt64(s[..at]));
        return blob;
    }

    /// <summary>Reads a blob written by <see cref="Serialize"/>; throws a <see cref="GuestStateCorruptException"/> naming the problem otherwise.</summary>
    public static GuestState Parse(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < 4 || BinaryPrimitives.ReadUInt32LittleEndian(blob) != Magic)
            throw new GuestStateCorruptException(blob.Length < 4
                ? $"blob is {blob.Length} B, too short for a header"
                : $"bad magic {BinaryPrimitives.ReadUInt32LittleEndian(blob):x8}: not a synthetic guest state");
        if (blob.Length < HeaderSize + ChecksumSize)
            throw new GuestStateTruncatedException(blob.Length, HeaderSize + ChecksumSize);
        var count = BinaryPrimitives.ReadInt64LittleEndian(blob[64..]);
        var body = blob[..^ChecksumSize];
        var stored = BinaryPrimitives.ReadUInt64LittleEndian(blob[^ChecksumSize..]);
        var computed = XxHash3.HashToUInt64(body);
        if (stored != computed)
        {
            // The checksum is over the whole blob, so a cut blob fails it too: say "truncated" when the
            // (possibly intact) count says the blob should be longer, since that is the likely story.
            if (count >= 0 && count <= int.MaxValue && HeaderSize + count * PairSize + ChecksumSize > blob.Length)
                throw new GuestStateTruncatedException(blob.Length, HeaderSize + count * PairSize + ChecksumSize);
            throw new GuestStateChecksumException(stored, computed);
        }
        var format = BinaryPrimitives.ReadUInt16LittleEndian(blob[4..]);
        if (format != FormatVersion)
            throw new GuestStateCorruptException($"format version {format} is not supported (this build reads {FormatVersion})");
        if (count < 0 || count > int.MaxValue / PairSize || HeaderSize + count * PairSize + ChecksumSize != blob.Length)
            throw new GuestStateCorruptException($"pair count {count} does not match the blob length {blob.Length} B");

        var seed = BinaryPrimitives.ReadInt64LittleEndian(blob[8..]);
        var volumeSize = BinaryPrimitives.ReadInt64LittleEndian(blob[16..]);
        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(blob[24..]);
        try
        {
            ValidateGeometry(volumeSize, blockSize);
        }
        catch (ArgumentException e)
        {
            throw new GuestStateCorruptException($"invalid geometry: {e.Message}");
        }
        var epoch = BinaryPrimitives.ReadInt64LittleEndian(blob[32..]);
        var writes = BinaryPrimitives.ReadInt64LittleEndian(blob[40..]);
        var bytes = BinaryPrimitives.ReadInt64LittleEndian(blob[48..]);
        var digest = BinaryPrimitives.ReadUInt64LittleEndian(blob[56..]);
        if (writes < 0 || bytes < 0 || epoch < 0)
            throw new GuestStateCorruptException($"negative counter: epoch {epoch}, writes {writes}, bytes {bytes}");

        var blocks = volumeSize / blockSize;
        var pairs = new BlockVersion[count];
        var previous = -1L;
        for (var i = 0; i < pairs.Length; i++)
        {
            var at = HeaderSize + i * PairSize;
            var block = BinaryPrimitives.ReadInt64LittleEndian(blob[at..]);
            var version = BinaryPrimitives.ReadUInt32LittleEndian(blob[(at + 8)..]);
            if (block <= previous || block >= blocks)
                throw new GuestStateCorruptException($"pair {i}: block {block} is out of order or outside the volume ({blocks} blocks)");
            if (version == 0)
                throw new GuestStateCorruptException($"pair {i}: block {block} has version 0 (unwritten blocks are not listed)");
            pairs[i] = new BlockVersion(block, version);
            previous = block;
        }
        return new GuestState(seed, volumeSize, blockSize, epoch, writes, bytes, digest, pairs);
    }

    public override string ToString() =>
        $"guest state epoch {Epoch}: seed {Seed}, {WriteCount} writes, {BytesWritten} B, {Versions.Count} blocks touched, digest {Digest:x16}";
}
