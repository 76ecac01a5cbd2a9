using System.Buffers.Binary;
using System.IO.Hashing;

namespace McActors.Guests;

/// <summary>One write of the synthetic workload: its index in the write sequence and its byte range.</summary>
public readonly record struct SyntheticWrite(long Index, long Offset, int Length);

/// <summary>
/// The built-in synthetic guest's workload: a deterministic, seeded stream of block-aligned writes
/// (1 block to 256 KiB, skewed toward small, half of them in a hot region so that they overlap).
/// Write <c>i</c>'s range depends only on (seed, i); a block's content only on (seed, block,
/// version). The state is the per-block version table (sparse: memory grows with the blocks
/// written, not the volume size), a running digest over the write sequence, and the counts.
/// Not thread-safe.
/// </summary>
public sealed class SyntheticWorkload
{
    public const int DefaultBlockSize = 4096;
    public const int MaxWriteBytes = 256 << 10;

    private readonly Dictionary<long, uint> _versions = [];
    private readonly ulong _seedKey;
    private readonly long _hotStart;
    private readonly long _hotBlocks;
    private readonly byte[] _digestScratch;

    public SyntheticWorkload(long seed, long volumeSizeBytes, int blockSize = DefaultBlockSize)
    {
        GuestState.ValidateGeometry(volumeSizeBytes, blockSize);
        Seed = seed;
        VolumeSizeBytes = volumeSizeBytes;
        BlockSize = blockSize;
        VolumeBlocks = volumeSizeBytes / blockSize;
        MaxWriteBlocks = (int)Math.Min(VolumeBlocks, Math.Max(1, MaxWriteBytes / blockSize));
        _seedKey = Mix.Combine(Mix.Fmix((ulong)seed), 0x3017E5UL);
        // The hot region: 1/16 of the volume (at least one maximal write), at a seed-chosen place.
        _hotBlocks = Math.Min(VolumeBlocks, Math.Max(MaxWriteBlocks, VolumeBlocks / 16));
        _hotStart = (long)(Mix.Fmix(_seedKey) % (ulong)(VolumeBlocks - _hotBlocks + 1));
        _digestScratch = new byte[32 + 4 * MaxWriteBlocks];
    }

    public long Seed { get; }
    public long VolumeSizeBytes { get; }
    public int BlockSize { get; }
    public long VolumeBlocks { get; }

    /// <summary>The largest write this workload issues, in blocks (and <see cref="MaxWriteLength"/> in bytes).</summary>
    public int MaxWriteBlocks { get; }

    public int MaxWriteLength => MaxWriteBlocks * BlockSize;

    /// <summary>Writes issued so far; also the index of the next write.</summary>
    public long WriteCount { get; private set; }

    public long BytesWritten { get; private set; }

    /// <summary>XxHash3 chained over every write's (index, offset, length, new block versions).</summary>
    public ulong Digest { get; private set; }

    /// <summary>Blocks written at least once (the size of the version table).</summary>
    public int BlocksTouched => _versions.Count;

    /// <summary>The version a block holds now; 0 for a block never written (all zeroes).</summary>
    public uint VersionOf(long block) => _versions.GetValueOrDefault(block);

    /// <summary>The range of the next write, without issuing it (it depends only on seed and write count).</summary>
    public SyntheticWrite PeekNextWrite() => Plan(WriteCount);

    /// <summary>
    /// Issues the next write: bumps the versions of the blocks it covers, updates digest and counts,
    /// and fills <paramref name="buffer"/>[..Length] with the new content. Throws, changing nothing,
    /// when the buffer is shorter than the write (a buffer of <see cref="MaxWriteLength"/> always fits).
    /// </summary>
    public SyntheticWrite NextWrite(Span<byte> buffer)
    {
        var write = Plan(WriteCount);
        if (buffer.Length < write.Length)
            throw new ArgumentException($"buffer of {buffer.Length} B is shorter than write {write.Index} ({write.Length} B)", nameof(buffer));
        Apply(write, buffer[..write.Length]);
        return write;
    }

    /// <summary>Issues the next write into a new array of exactly its length.</summary>
    public (SyntheticWrite Write, byte[] Data) NextWrite()
    {
        var write = Plan(WriteCount);
        var data = new byte[write.Length];
        Apply(write, data);
        return (write, data);
    }

    /// <summary>Issues the next write without producing its content (replaying a history).</summary>
    public SyntheticWrite Skip()
    {
        var write = Plan(WriteCount);
        Apply(write, []);
        return write;
    }

    /// <summary>This workload's state as a checkpoint blob (see <see cref="GuestState"/>).</summary>
    public byte[] Capture(long epoch) => CaptureState(epoch).Serialize();

    public GuestState CaptureState(long epoch)
    {
        // Sorting primitive keys with their values beside them is several times faster than
        // sorting structs through a comparison delegate; capture runs with the guest paused.
        var blocks = new long[_versions.Count];
        var versions = new uint[_versions.Count];
        var i = 0;
        foreach (var (block, version) in _versions)
        {
            blocks[i] = block;
            versions[i++] = version;
        }
        Array.Sort(blocks, versions);
        var pairs = new BlockVersion[blocks.Length];
        for (i = 0; i < pairs.Length; i++)
            pairs[i] = new BlockVersion(blocks[i], versions[i]);
        return new GuestState(Seed, VolumeSizeBytes, BlockSize, epoch, WriteCount, BytesWritten, Digest, pairs);
    }

    /// <summary>Rebuilds the workload from a checkpoint blob; it continues exactly as the captured one would have.</summary>
    public static SyntheticWorkload Restore(ReadOnlySpan<byte> blob) => Restore(GuestState.Parse(blob));

    public static SyntheticWorkload Restore(GuestState state)
    {
        var w = new SyntheticWorkload(state.Seed, state.VolumeSizeBytes, state.BlockSize)
        {
            WriteCount = state.WriteCount,
            BytesWritten = state.BytesWritten,
            Digest = state.Digest,
        };
        w._versions.EnsureCapacity(state.Versions.Count);
        foreach (var pair in state.Versions)
            w._versions.Add(pair.Block, pair.Version);
        return w;
    }

    /// <summary>The content of version <paramref name="version"/> of a block of this workload (for verifiers and tests).</summary>
    public void FillBlock(long block, uint version, Span<byte> destination) =>
        BlockContent.Fill(Seed, block, version, destination[..BlockSize]);

    private SyntheticWrite Plan(long index)
    {
        // A fresh generator per write, derived from (seed, index): restart anywhere without generator state.
        var rng = new SplitMix64(Mix.Combine(_seedKey, (ulong)index));
        // Size class e in [0, log2(max)], P(e <= k) = sqrt((k+1)/(classes)): mostly 1-block writes.
        var classes = System.Numerics.BitOperations.Log2((uint)MaxWriteBlocks) + 1;
        var u = rng.NextDouble();
        var e = Math.Min((int)(u * u * classes), classes - 1);
        var low = 1L << e;
        var high = Math.Min(MaxWriteBlocks, (1L << (e + 1)) - 1);
        var blocks = low + (long)rng.NextBelow((ulong)(high - low + 1));
        long first;
        if (rng.Next() % 2 == 0 && blocks <= _hotBlocks)
            first = _hotStart + (long)rng.NextBelow((ulong)(_hotBlocks - blocks + 1));
        else
            first = (long)rng.NextBelow((ulong)(VolumeBlocks - blocks + 1));
        return new SyntheticWrite(index, first * BlockSize, (int)(blocks * BlockSize));
    }

    private void Apply(SyntheticWrite write, Span<byte> data)
    {
        var first = write.Offset / BlockSize;
        var blocks = write.Length / BlockSize;
        var record = _digestScratch.AsSpan(0, 28 + 4 * blocks);
        BinaryPrimitives.WriteInt64LittleEndian(record, write.Index);
        BinaryPrimitives.WriteInt64LittleEndian(record[8..], write.Offset);
        BinaryPrimitives.WriteInt32LittleEndian(record[16..], write.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(record[20..], Digest);
        for (var i = 0; i < blocks; i++)
        {
            var block = first + i;
            var version = checked(_versions.GetValueOrDefault(block) + 1);
            _versions[block] = version;
            BinaryPrimitives.WriteUInt32LittleEndian(record[(28 + 4 * i)..], version);
            if (!data.IsEmpty)
                BlockContent.Fill(Seed, block, version, data.Slice(i * BlockSize, BlockSize));
        }
        Digest = XxHash3.HashToUInt64(record, (long)_seedKey);
        WriteCount++;
        BytesWritten += write.Length;
    }
}
