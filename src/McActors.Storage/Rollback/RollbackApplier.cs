using McActors.Storage.RollbackLogs;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>Writes undo records back into the image during a rollback, gathering runs of blocks so one pwritev restores many.</summary>
internal sealed class RollbackApplier(VolumeImage image, int blockSize)
{
    private readonly byte[] _zeroBlock = new byte[blockSize];
    private readonly List<ReadOnlyMemory<byte>> _gather = [];

    /// <summary>Writes the records of one scan chunk back into the image, a run of consecutive blocks per pwritev.</summary>
    public void Apply(ReadOnlyMemory<byte> chunk, IReadOnlyList<LogRecordRef> records)
    {
        const int maxRun = 64;
        var i = 0;
        while (i < records.Count)
        {
            var start = records[i].BlockIndex;
            _gather.Clear();
            var j = i;
            while (j < records.Count && records[j].BlockIndex == start + (j - i) && _gather.Count < maxRun)
            {
                _gather.Add(records[j].Zero ? _zeroBlock : chunk.Slice(records[j].DataOffset, blockSize));
                j++;
            }
            image.Write(start * blockSize, _gather);
            i = j;
        }
    }
}
