using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Guests;

/// <summary>Reads <c>buffer.Length</c> bytes of a volume image at <paramref name="offset"/> (both block-aligned).</summary>
public delegate void ImageReader(long offset, Span<byte> buffer);

/// <summary>What the verifier found in a block that does not hold its expected content.</summary>
public enum FoundContent
{
    /// <summary>All zero bytes (the block was never written, or a write to it was lost).</summary>
    Zeroes,

    /// <summary>This block's content, of another version than expected (an older one: a lost write; a newer one: a write that should have been rolled back).</summary>
    OtherVersion,

    /// <summary>The header of the expected version but other bytes after it (a torn or damaged write).</summary>
    DamagedVersion,

    /// <summary>The content another block of this workload should hold (a write landed at the wrong offset).</summary>
    OtherBlock,

    /// <summary>Content written by a synthetic workload with another seed.</summary>
    OtherSeed,

    /// <summary>Bytes the synthetic guest never writes.</summary>
    UnknownBytes,
}

/// <summary>The first block whose content disagrees with the guest state.</summary>
/// <param name="ExpectedVersion">0: the block was never written and must be all zero.</param>
/// <param name="FoundBlock">For content the verifier recognises: the block that content belongs to.</param>
/// <param name="FoundVersion">For content the verifier recognises: its version.</param>
/// <param name="FirstDifferentByte">Offset inside the block of the first byte that differs from the expected content.</param>
public sealed record BlockMismatch(
    long Block,
    long Offset,
    uint ExpectedVersion,
    FoundContent Found,
    long? FoundBlock,
    uint? FoundVersion,
    int FirstDifferentByte,
    string Description)
{
    public override string ToString() => Description;
}

/// <summary>
/// The outcome of <see cref="GuestVerifier.Verify(GuestState, ImageReader, int)"/>: OK, or the first
/// block that disagrees. <see cref="BlocksChecked"/> counts the blocks found correct before it.
/// </summary>
public sealed record GuestVerification(GuestState State, long BlocksChecked, BlockMismatch? FirstMismatch)
{
    public bool Ok => FirstMismatch is null;

    public override string ToString() => FirstMismatch is null
        ? $"OK: {BlocksChecked} blocks match {State}"
        : $"MISMATCH at {FirstMismatch.Description} ({State})";
}

/// <summary>
/// Proves that an image is exactly the disk the synthetic guest wrote up to a captured state
/// (invariants 1–2 of DESIGN.md): every block listed in the version table holds the content of
/// that version, every other block is all zero. Reads the image in large sequential chunks.
/// </summary>
public static class GuestVerifier
{
    public const int DefaultChunkBytes = 1 << 20;

    public static GuestVerification Verify(byte[] blob, ImageReader read) => Verify(GuestState.Parse(blob), read);

    public static GuestVerification Verify(GuestState state, VolumeImage image)
    {
        CheckSize(state, image.SizeBytes);
        return Verify(state, image.Read);
    }

    public static GuestVerification Verify(GuestState state, RollbackStore store)
    {
        CheckSize(state, store.Descriptor.SizeBytes);
        return Verify(state, store.Read);
    }

    public static GuestVerification Verify(GuestState state, ImageReader read, int chunkBytes = DefaultChunkBytes)
    {
        var bs = state.BlockSize;
        var chunk = new byte[Math.Max(bs, chunkBytes / bs * bs)];
        var expected = new byte[bs];
        var pairs = state.Versions;
        var next = 0; // index of the next listed (written) block
        for (long offset = 0; offset < state.VolumeSizeBytes; offset += chunk.Length)
        {
            var length = (int)Math.Min(chunk.Length, state.VolumeSizeBytes - offset);
            var data = chunk.AsSpan(0, length);
            read(offset, data);
            var first = offset / bs;
            var end = first + length / bs;
            var b = first;
            while (b < end)
            {
                var nextWritten = next < pairs.Count ? pairs[next].Block : long.MaxValue;
                if (nextWritten > b)
                {
                    // A run of never-written blocks: one vectorised scan for a non-zero byte.
                    var runEnd = Math.Min(nextWritten, end);
                    var run = data[(int)((b - first) * bs)..(int)((runEnd - first) * bs)];
                    var at = run.IndexOfAnyExcept((byte)0);
                    if (at >= 0)
                    {
                        var bad = b + at / bs;
                        var found = data.Slice((int)((bad - first) * bs), bs);
                        return new GuestVerification(state, bad, Diagnose(state, bad, 0, found, expected));
                    }
                    b = runEnd;
                }
                else
                {
                    var version = pairs[next].Version;
                    var found = data.Slice((int)((b - first) * bs), bs);
                    BlockContent.Fill(state.Seed, b, version, expected);
                    if (!found.SequenceEqual(expected))
                        return new GuestVerification(state, b, Diagnose(state, b, version, found, expected));
                    next++;
                    b++;
                }
            }
        }
        return new GuestVerification(state, state.BlockCount, null);
    }

    /// <summary>
    /// Replays the workload from its seed for <see cref="GuestState.WriteCount"/> writes and checks
    /// that the state's version table, byte count and digest are the ones that history produces.
    /// Returns null when they are, else what differs. Catches a well-formed blob with a wrong table.
    /// </summary>
    public static string? CheckHistory(GuestState state)
    {
        var replay = new SyntheticWorkload(state.Seed, state.VolumeSizeBytes, state.BlockSize);
        for (var i = 0L; i < state.WriteCount; i++)
            replay.Skip();
        if (replay.Digest != state.Digest)
            return $"digest {state.Digest:x16} is not the digest {replay.Digest:x16} of {state.WriteCount} writes of seed {state.Seed}";
        if (replay.BytesWritten != state.BytesWritten)
            return $"{state.BytesWritten} B written, replay says {replay.BytesWritten} B";
        if (replay.BlocksTouched != state.Versions.Count)
            return $"{state.Versions.Count} blocks in the version table, replay touched {replay.BlocksTouched}";
        foreach (var pair in state.Versions)
        {
            if (replay.VersionOf(pair.Block) != pair.Version)
                return $"block {pair.Block} has version {pair.Version} in the table, replay says {replay.VersionOf(pair.Block)}";
        }
        return null;
    }

    private static void CheckSize(GuestState state, long imageSize)
    {
        if (imageSize != state.VolumeSizeBytes)
            throw new ArgumentException($"image is {imageSize} B but the guest state is for a volume of {state.VolumeSizeBytes} B");
    }

    private static BlockMismatch Diagnose(GuestState state, long block, uint expectedVersion, ReadOnlySpan<byte> found, Span<byte> scratch)
    {
        var offset = block * state.BlockSize;
        if (expectedVersion == 0)
            scratch.Clear();
        else
            BlockContent.Fill(state.Seed, block, expectedVersion, scratch);
        var firstDiff = FirstDifference(found, scratch);
        var expectedText = expectedVersion == 0 ? "zeroes (never written)" : $"version {expectedVersion} content";

        FoundContent kind;
        long? foundBlock = null;
        uint? foundVersion = null;
        string foundText;
        var header = BlockContent.TryReadHeader(found);
        if (found.IndexOfAnyExcept((byte)0) < 0)
        {
            kind = FoundContent.Zeroes;
            foundText = "zeroes";
        }
        else if (header is null)
        {
            kind = FoundContent.UnknownBytes;
            foundText = $"unknown bytes (first difference at byte {firstDiff} of the block)";
        }
        else if (header.Value.SeedTag != BlockContent.SeedTag(state.Seed))
        {
            kind = FoundContent.OtherSeed;
            foundText = $"content of another synthetic workload (seed tag {header.Value.SeedTag:x16}, block {header.Value.Block}, version {header.Value.Version})";
        }
        else
        {
            foundBlock = header.Value.Block;
            foundVersion = header.Value.Version;
            BlockContent.Fill(state.Seed, header.Value.Block, header.Value.Version, scratch);
            var intact = found.SequenceEqual(scratch);
            var damage = intact ? "" : $", damaged from byte {FirstDifference(found, scratch)}";
            if (header.Value.Block != block)
            {
                kind = FoundContent.OtherBlock;
                foundText = $"the content of block {header.Value.Block} (offset {header.Value.Block * state.BlockSize}) version {header.Value.Version}{damage}";
            }
            else if (header.Value.Version == expectedVersion)
            {
                kind = FoundContent.DamagedVersion;
                foundText = $"version {expectedVersion} header with other bytes from byte {firstDiff}";
            }
            else
            {
                kind = FoundContent.OtherVersion;
                var age = header.Value.Version < expectedVersion ? "older" : "newer";
                foundText = $"version {header.Value.Version} content ({age}{damage})";
            }
        }
        var description = $"block {block} (offset {offset}): expected {expectedText}, found {foundText}";
        return new BlockMismatch(block, offset, expectedVersion, kind, foundBlock, foundVersion, firstDiff, description);
    }

    private static int FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => a.CommonPrefixLength(b);
}
