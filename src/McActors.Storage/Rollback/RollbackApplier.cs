using System.Runtime.CompilerServices;
using McActors.Storage.RollbackLogs;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>
/// Writes undo records back into the image during a rollback, gathering runs of blocks so one
/// pwritev restores many. Logs are applied newest first and the oldest stash of a block wins, so a
/// record whose block an older log of the same rollback also holds is skipped: that write would be
/// overwritten anyway. The range each chunk wrote is handed to writeback at once, so that the disk
/// works while the next chunk is read and the final fsync finds most of the image already written.
/// </summary>
internal sealed class RollbackApplier(VolumeImage image, int blockSize)
{
    /// <summary>IOV_MAX on Linux: one pwritev takes no more buffers (a chunk of zero records can name more blocks).</summary>
    private const int MaxRun = 1024;

    private readonly byte[] _zeroBlock = new byte[blockSize];
    private readonly List<ReadOnlyMemory<byte>> _gather = [];
    private IReadOnlyList<SparseBlockSet> _older = [];

    /// <summary>
    /// Applies every record of <paramref name="log"/> whose block none of <paramref name="older"/>
    /// holds. Returns the records found.
    /// </summary>
    public long Apply(RollbackLog log, IReadOnlyList<SparseBlockSet> older)
    {
        _older = older;
        return log.Scan(ApplyChunk).Records;
    }

    /// <summary>Writes the records of one scan chunk back into the image, a run of consecutive blocks per pwritev.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see RollbackLog.Scan
    private void ApplyChunk(ReadOnlyMemory<byte> chunk, IReadOnlyList<LogRecordRef> records)
    {
        long low = long.MaxValue, high = long.MinValue;
        var i = 0;
        while (i < records.Count)
        {
            if (IsOverridden(records[i].BlockIndex))
            {
                i++;
                continue;
            }
            var start = records[i].BlockIndex;
            _gather.Clear();
            var j = i;
            while (j < records.Count && records[j].BlockIndex == start + (j - i) && _gather.Count < MaxRun && !IsOverridden(records[j].BlockIndex))
            {
                _gather.Add(records[j].Zero ? _zeroBlock : chunk.Slice(records[j].DataOffset, blockSize));
                j++;
            }
            image.Write(start * blockSize, _gather);
            low = Math.Min(low, start);
            high = Math.Max(high, start + (j - i));
            i = j;
        }
        if (high > low)
            image.StartWriteback(low * blockSize, (high - low) * blockSize);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // see RollbackLog.Scan
    private bool IsOverridden(long block)
    {
        foreach (var set in _older)
            if (set.Contains(block))
                return true;
        return false;
    }
}
