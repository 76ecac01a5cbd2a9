using McActors.Storage.Io;
using McActors.Storage.RollbackLogs;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>
/// One write-ahead batch: undo records (as runs per log) and the image writes they protect, in
/// arrival order. <see cref="AppendAndSync"/> appends the records and syncs each log once; only
/// after it returned does <see cref="WriteImage"/> issue the image writes: the write-ahead rule for
/// the whole batch at the cost of one fsync per log. The two run on different threads (see
/// <see cref="WriteAheadPipeline"/>), one after the other.
/// </summary>
internal sealed class WriteAheadBatch(int capacity, int maxRecordSize)
{
    private readonly byte[] _records = new byte[capacity + maxRecordSize];
    private readonly List<(RollbackLog Log, int Start, int End)> _runs = [];
    private readonly byte[] _data = new byte[capacity];
    private readonly List<(long Offset, int Start, int Length)> _writes = [];
    private int _recordBytes;
    private int _dataBytes;

    /// <summary>Blocks touched by the queued image writes: until applied, the image is stale there.</summary>
    public HashSet<long> Blocks { get; } = [];

    public bool IsEmpty => _runs.Count == 0 && _writes.Count == 0;

    public long BufferBytes => _records.Length + _data.Length;

    /// <summary>How many records of <paramref name="size"/> bytes still fit.</summary>
    public int RoomForRecords(int size) => (_records.Length - _recordBytes) / size;

    /// <summary>Space for records of <paramref name="log"/>, <paramref name="size"/> bytes in all; <see cref="RecordWritten"/> then says how much was used.</summary>
    public Memory<byte> ReserveRecords(RollbackLog log, int size)
    {
        if (_runs.Count == 0 || _runs[^1].Log != log)
            _runs.Add((log, _recordBytes, _recordBytes));
        return _records.AsMemory(_recordBytes, size);
    }

    public void RecordWritten(int size)
    {
        _recordBytes += size;
        _runs[^1] = (_runs[^1].Log, _runs[^1].Start, _recordBytes);
    }

    /// <summary>Queues an image write; false if it does not fit in what is left of the batch.</summary>
    public bool TryQueue(long offset, ReadOnlySpan<byte> data, long firstBlock, long lastBlock)
    {
        if (data.Length > _data.Length - _dataBytes)
            return false;
        data.CopyTo(_data.AsSpan(_dataBytes));
        _writes.Add((offset, _dataBytes, data.Length));
        _dataBytes += data.Length;
        for (var block = firstBlock; block <= lastBlock; block++)
            Blocks.Add(block);
        return true;
    }

    /// <summary>Records to their logs, then one fsync per log. Returns (log bytes, syncs).</summary>
    public (long LogBytes, int Syncs) AppendAndSync(Action<RollbackStore.CrashPoint>? crashHook, IStorageFaults? faults = null)
    {
        long logBytes = 0;
        var syncs = 0;
        if (_runs.Count == 0)
            return (0, 0);
        foreach (var (log, start, end) in _runs)
        {
            faults?.BeforeWrite(log.Path, log.Length, end - start);
            log.Append(_records.AsSpan(start, end - start));
            logBytes += end - start;
        }
        crashHook?.Invoke(RollbackStore.CrashPoint.RecordsAppended);
        foreach (var (log, _, _) in _runs)
        {
            if (log.DurableLength == log.Length)
                continue;
            faults?.BeforeSync(log.Path);
            log.Sync();
            syncs++;
        }
        crashHook?.Invoke(RollbackStore.CrashPoint.LogsSynced);
        return (logBytes, syncs);
    }

    /// <summary>The queued image writes, in arrival order. Only after <see cref="AppendAndSync"/> returned.</summary>
    public void WriteImage(VolumeImage image, Action<RollbackStore.CrashPoint>? crashHook)
    {
        foreach (var (offset, start, length) in _writes)
        {
            image.Write(offset, _data.AsSpan(start, length));
            crashHook?.Invoke(RollbackStore.CrashPoint.ImageWriteIssued);
        }
    }

    public void Reset()
    {
        _runs.Clear();
        _writes.Clear();
        Blocks.Clear();
        _recordBytes = 0;
        _dataBytes = 0;
    }
}
