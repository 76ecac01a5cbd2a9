using System.Buffers.Binary;

namespace McActors.Guests;

/// <summary>
/// The content the synthetic guest writes into a block: a pure function of (seed, block index,
/// version), so the version table alone lets anyone recompute every block. The first
/// <see cref="HeaderSize"/> bytes are a header naming the block, version and seed, so that a
/// verifier that finds the wrong content can say whose content it found.
/// </summary>
internal static class BlockContent
{
    public const int HeaderSize = 32;

    // "McGB" little-endian: marks a block written by the synthetic guest.
    public const uint Magic = 0x42476347;

    /// <summary>What a block's header says about the content found in it.</summary>
    public readonly record struct Header(uint Version, long Block, ulong SeedTag);

    /// <summary>The tag of a seed stored in every block header (a hash, so seeds 1 and 2 differ in many bits).</summary>
    public static ulong SeedTag(long seed) => Mix.Combine(Mix.Fmix((ulong)seed), 0x5EEDUL);

    /// <summary>Fills <paramref name="block"/> (one whole block) with the content of version <paramref name="version"/> of block <paramref name="blockIndex"/>.</summary>
    public static void Fill(long seed, long blockIndex, uint version, Span<byte> block)
    {
        var seedTag = SeedTag(seed);
        BinaryPrimitives.WriteUInt32LittleEndian(block, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], version);
        BinaryPrimitives.WriteInt64LittleEndian(block[8..], blockIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(block[16..], seedTag);
        // A check over the header: random bytes that happen to start with the magic are not taken for a header.
        BinaryPrimitives.WriteUInt64LittleEndian(block[24..], HeaderCheck(version, blockIndex, seedTag));
        var rng = new SplitMix64(Mix.Combine(Mix.Combine(seedTag, (ulong)blockIndex), version));
        var body = block[HeaderSize..];
        var i = 0;
        for (; i + 8 <= body.Length; i += 8)
            BinaryPrimitives.WriteUInt64LittleEndian(body[i..], rng.Next());
        if (i < body.Length)
        {
            Span<byte> last = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(last, rng.Next());
            last[..(body.Length - i)].CopyTo(body[i..]);
        }
    }

    /// <summary>Reads a block's header, or null when the block does not start with a valid one.</summary>
    public static Header? TryReadHeader(ReadOnlySpan<byte> block)
    {
        if (block.Length < HeaderSize || BinaryPrimitives.ReadUInt32LittleEndian(block) != Magic)
            return null;
        var version = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
        var index = BinaryPrimitives.ReadInt64LittleEndian(block[8..]);
        var seedTag = BinaryPrimitives.ReadUInt64LittleEndian(block[16..]);
        var check = BinaryPrimitives.ReadUInt64LittleEndian(block[24..]);
        return check == HeaderCheck(version, index, seedTag) ? new Header(version, index, seedTag) : null;
    }

    private static ulong HeaderCheck(uint version, long blockIndex, ulong seedTag) =>
        Mix.Combine(Mix.Combine(seedTag ^ Magic, (ulong)blockIndex), version);
}

/// <summary>SplitMix64 mixing: cheap, well-distributed and identical on every platform and runtime.</summary>
internal static class Mix
{
    public const ulong Golden = 0x9E3779B97F4A7C15UL;

    public static ulong Fmix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public static ulong Combine(ulong a, ulong b) => Fmix(a ^ Fmix(b + Golden));
}

/// <summary>
/// A counter-based generator: its whole state is one ulong derived from (seed, counter), so the
/// workload can restart at any write index without serialising a generator.
/// </summary>
internal struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public ulong Next()
    {
        _state += Mix.Golden;
        return Mix.Fmix(_state);
    }

    /// <summary>A value in [0, bound); the multiply-high bias is below 2^-40 for the bounds used here.</summary>
    public ulong NextBelow(ulong bound) => bound == 0 ? 0 : Math.BigMul(Next(), bound, out _);

    /// <summary>A double in [0, 1).</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
}
