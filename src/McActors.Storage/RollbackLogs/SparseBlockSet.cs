using System.Numerics;

namespace McActors.Storage.RollbackLogs;

/// <summary>
/// A set of block indexes as a two-level sparse bitmap: 512-byte leaves, each covering 4096
/// consecutive blocks, created only where a block is set. Memory follows the dirty blocks, not
/// the volume: a 64 GiB volume with a few dirty blocks costs a few leaves, and even a fully
/// dirty one costs one bit per block.
/// </summary>
public sealed class SparseBlockSet
{
    private const int LeafShift = 12;               // 4096 blocks per leaf
    private const int LeafWords = (1 << LeafShift) / 64;
    private readonly Dictionary<long, ulong[]> _leaves = [];

    public long Count { get; private set; }

    /// <summary>Bytes held by the bitmap leaves (for memory accounting).</summary>
    public long LeafBytes => (long)_leaves.Count * LeafWords * sizeof(ulong);

    public bool Contains(long block) =>
        _leaves.TryGetValue(block >> LeafShift, out var leaf) && (leaf[WordIndex(block)] & Bit(block)) != 0;

    /// <summary>Adds the block; returns false if it was already there.</summary>
    public bool Add(long block)
    {
        if (!_leaves.TryGetValue(block >> LeafShift, out var leaf))
        {
            leaf = new ulong[LeafWords];
            _leaves.Add(block >> LeafShift, leaf);
        }
        ref var word = ref leaf[WordIndex(block)];
        if ((word & Bit(block)) != 0)
            return false;
        word |= Bit(block);
        Count++;
        return true;
    }

    public void Clear()
    {
        _leaves.Clear();
        Count = 0;
    }

    /// <summary>The blocks in ascending order.</summary>
    public IEnumerable<long> Enumerate()
    {
        foreach (var (key, leaf) in _leaves.OrderBy(kv => kv.Key))
            for (var w = 0; w < LeafWords; w++)
            {
                var word = leaf[w];
                while (word != 0)
                {
                    var bit = BitOperations.TrailingZeroCount(word);
                    yield return (key << LeafShift) + w * 64 + bit;
                    word &= word - 1;
                }
            }
    }

    private static int WordIndex(long block) => (int)(block & ((1 << LeafShift) - 1)) >> 6;
    private static ulong Bit(long block) => 1UL << (int)(block & 63);
}
