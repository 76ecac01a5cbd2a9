using McActors.Storage.RollbackLogs;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>
/// A secondary's copy of the volume plus its per-epoch copy-before-write rollback logs.
/// <para>
/// Epoch e's writes stash the old content of each block the first time e touches it, then change
/// the image. <see cref="Prepare"/> makes image, logs and state durable; <see cref="Commit"/> drops
/// the logs of committed epochs in constant time; <see cref="RollbackTo"/> applies the logs newer
/// than a checkpoint, newest first, so the oldest stash of each block wins and the image becomes the
/// checkpoint's. Checkpoint 0 is the image as created; epochs count from 1.
/// </para>
/// <para>
/// Write-ahead rule: an undo record is durable before the image write it protects is issued.
/// Writes that need a stash are queued with their records; up to
/// <see cref="RollbackStoreOptions.WriteAheadBatchBytes"/> of them share one fsync of the logs, after
/// which the queued image writes go out in order. A full batch's records are appended and fsynced
/// by a write-ahead thread while the caller fills the next, so stashing overlaps the fsync; the
/// caller issues the batch's image writes when it takes the batch back, after that fsync. Writes to blocks already stashed
/// in their epoch (and not queued) go straight to the image. Memory is two batches (records +
/// writes each) plus one bit per stashed block, never a function of the volume size.
/// </para>
/// <para>
/// Resync (a replica joining, or an old primary coming back): <see cref="OpenForResync"/> keeps the
/// image if it is of the same volume, drops every log and persists "resync in progress"; the
/// primary's differing chunks and live writes then arrive as ordinary <see cref="Write"/>s, and
/// <see cref="MarkSynced"/>(E) records that from checkpoint E on the image is the primary's. Until
/// then no checkpoint can be prepared, rolled back to or recovered (<see cref="ResyncIncompleteException"/>).
/// <see cref="Detach"/> retires a directory whose image the owner will write directly (promotion).
/// </para>
/// Not thread-safe: one owner (the RollbackStore actor) calls it. Directory layout:
/// <c>volume.json</c>, <c>volume.img</c>, <c>store.state</c>, <c>rollback/epoch-N.rblog</c>.
/// </summary>
// One type in three files: every operation shares the same open image, logs, state file and fault
// (a failure anywhere makes the whole store unusable until recovered), and its owner sees one API.
// Parts that need none of that are their own classes: StoreDirectory, RecoveredLogs, RollbackApplier,
// WriteAheadPipeline. Here: the write path and the store's life; RollbackStore.Open.cs: getting a
// store onto a directory; RollbackStore.Checkpoints.cs: prepare, commit, rollback, resync end.
public sealed partial class RollbackStore : IDisposable
{
    public const string ImageFileName = "volume.img";
    public const string LogDirectoryName = "rollback";

    private readonly string _logDirectory;
    private readonly VolumeImage _image;
    private readonly StoreStateFile _state;
    private readonly BackgroundDeleter _deleter;
    private readonly SortedDictionary<long, RollbackLog> _logs = [];
    private readonly int _blockSize;
    private readonly RollbackApplier _applier;

    private readonly WriteAheadPipeline _writeAhead;
    private readonly List<Memory<byte>> _scatter = [];
    private long _currentEpoch;
    private long _guestBytes, _blocksStashed, _zeroBlocksStashed;
    private readonly long _writebackBytes;
    private long _writebackMark;
    private Exception? _fault;
    private bool _disposed;

    /// <summary>Named instants inside multi-step operations where crash tests stop the store.</summary>
    internal enum CrashPoint { RecordsAppended, LogsSynced, ImageWriteIssued, LogApplied, StateAdvanced }

    /// <summary>Crash-test hook: called at each <see cref="CrashPoint"/>; a test throws from it, then abandons the store.</summary>
    internal Action<CrashPoint>? CrashHook
    {
        get => _writeAhead.CrashHook;
        set => _writeAhead.CrashHook = value;
    }

    private RollbackStore(string directory, VolumeDescriptor descriptor, VolumeImage image, StoreStateFile state,
        RollbackStoreOptions options)
    {
        Directory = directory;
        Descriptor = descriptor;
        _logDirectory = Path.Combine(directory, LogDirectoryName);
        _image = image;
        _state = state;
        _blockSize = descriptor.BlockSize;
        _applier = new RollbackApplier(image, _blockSize);
        _writebackBytes = options.WritebackBytes;
        image.Faults = options.Faults; // every image write (direct, batched, rollback) and fsync passes the hook
        state.Faults = options.Faults;
        _writeAhead = new WriteAheadPipeline(image, options.WriteAheadBatchBytes, RollbackLogFormat.RecordSize(_blockSize, zero: false)) { Faults = options.Faults };
        _deleter = new BackgroundDeleter(state.Sync);
        _currentEpoch = state.State.Prepared;
    }

    public string Directory { get; }
    public VolumeDescriptor Descriptor { get; }

    /// <summary>The last committed checkpoint: the store can no longer roll back past it.</summary>
    public long CommittedEpoch => _state.State.Committed;

    /// <summary>The last checkpoint made durable here: the newest one this store can roll back to.</summary>
    public long PreparedEpoch => _state.State.Prepared;

    /// <summary>
    /// The first checkpoint whose image this store holds whole: 0 for a store that was always in
    /// sync (made by <see cref="Create"/>), <see cref="long.MaxValue"/> while a resync is in
    /// progress, else the epoch given to <see cref="MarkSynced"/>. Checkpoints before it can be
    /// neither prepared nor rolled back to.
    /// </summary>
    public long SyncedFrom => _state.State.SyncedFrom;

    /// <summary>Path of the image file (for <see cref="ImageDigest.Compute(string, long, int)"/> or a verifier).</summary>
    public string ImagePath => _image.Path;

    /// <summary>The newest epoch written or prepared.</summary>
    public long CurrentEpoch => _currentEpoch;

    /// <summary>Epochs that have a rollback log (uncommitted and written to), oldest first.</summary>
    public IReadOnlyList<long> LoggedEpochs => [.. _logs.Keys];

    /// <summary>What the recovery that opened this store found; null for a store just created.</summary>
    public RecoveryReport? Recovery { get; private init; }

    public StoreCounters Counters => new(_guestBytes, _image.BytesWritten, _writeAhead.LogBytes, _blocksStashed, _zeroBlocksStashed, _writeAhead.LogSyncs);

    /// <summary>Dropped logs not yet unlinked by the background deleter.</summary>
    public int PendingDeletes => _deleter.Pending;

    /// <summary>Waits until the background deleter has unlinked every dropped log; true if it did within the timeout.</summary>
    public bool WaitForDeletes(TimeSpan timeout) => _deleter.WaitIdle(timeout);

    /// <summary>Bytes held by the first-touch bitmaps of the uncommitted epochs.</summary>
    public long FirstTouchBytes => _logs.Values.Sum(l => l.Blocks.LeafBytes);

    /// <summary>Bytes of memory the store holds: the two write-ahead batches plus first-touch bitmaps.</summary>
    public long MemoryBytes => _writeAhead.BufferBytes + FirstTouchBytes;

    /// <summary>
    /// Applies a write of epoch <paramref name="epoch"/>: stashes the old content of every block it
    /// touches for the first time in that epoch, then changes the image (see the write-ahead rule).
    /// </summary>
    public void Write(long epoch, long offset, ReadOnlySpan<byte> data)
    {
        ThrowIfUnusable();
        VolumeImage.CheckRange(offset, data.Length, Descriptor.SizeBytes);
        if (epoch <= PreparedEpoch)
            throw new EpochOrderException($"write in epoch {epoch}, but epochs up to {PreparedEpoch} are prepared and closed");
        if (epoch < _currentEpoch)
            throw new EpochOrderException($"write in epoch {epoch} after epoch {_currentEpoch}: epochs only move forward");
        if (data.IsEmpty)
            return;
        try
        {
            _currentEpoch = epoch;
            _guestBytes += data.Length;
            _logs.TryGetValue(epoch, out var log);
            var first = offset / _blockSize;
            var last = (offset + data.Length - 1) / _blockSize;
            var stashed = false;
            if (NeedsStash(log, first, last))
            {
                log ??= CreateLog(epoch);
                stashed = true;
                WaitForQueuedWrites(log, first, last);
                for (var block = first; block <= last; block++)
                {
                    if (log.Blocks.Contains(block))
                        continue;
                    var end = block + 1;
                    while (end <= last && !log.Blocks.Contains(end))
                        end++;
                    StashRun(log, block, (int)(end - block));
                    block = end - 1;
                }
            }
            if (stashed || IsQueued(first, last))
                Enqueue(offset, data, first, last);
            else
                _image.Write(offset, data);
            MaybeStartWriteback();
        }
        catch (Exception e) when (e is not EpochOrderException) // write path: no lambda, same rule as Guard
        {
            _fault = e;
            throw;
        }
    }

    /// <summary>Reads the current image content (queued writes included).</summary>
    public void Read(long offset, Span<byte> buffer)
    {
        ThrowIfUnusable();
        VolumeImage.CheckRange(offset, buffer.Length, Descriptor.SizeBytes);
        if (_writeAhead.HasQueued)
            Guard(FlushWriteAhead);
        _image.Read(offset, buffer);
    }

    /// <summary>Flushes queued writes and makes the image durable (used on a clean stop).</summary>
    public void Flush()
    {
        ThrowIfUnusable();
        Guard(() =>
        {
            FlushWriteAhead();
            _image.Flush();
            _state.Sync();
        });
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        try
        {
            if (_fault is null && _deleter.SyncFailure is null)
                Flush();
        }
        finally
        {
            Close();
        }
    }

    /// <summary>
    /// Drops the store as a killed process would: records and writes still in the batch buffers
    /// are lost, nothing is flushed. For crash tests.
    /// </summary>
    internal void Abandon() => Close();

    private void Close()
    {
        _disposed = true;
        _writeAhead.Dispose();
        _deleter.Dispose();
        foreach (var log in _logs.Values)
            log.Dispose();
        _logs.Clear();
        _state.Dispose();
        _image.Dispose();
    }

    private RollbackLog CreateLog(long epoch)
    {
        var log = RollbackLog.Create(_logDirectory, Descriptor, epoch, _state.State.Lineage);
        _logs.Add(epoch, log);
        return log;
    }

    private static bool NeedsStash(RollbackLog? log, long first, long last)
    {
        if (log is null)
            return true;
        for (var block = first; block <= last; block++)
            if (!log.Blocks.Contains(block))
                return true;
        return false;
    }

    /// <summary>
    /// The old content must include every queued write to the blocks about to be stashed: drains
    /// the filling batch if one of its writes touches them, else waits for the batch in flight if one of its writes does.
    /// </summary>
    private void WaitForQueuedWrites(RollbackLog log, long first, long last)
    {
        if (!_writeAhead.HasQueued)
            return;
        var inFlight = false;
        for (var block = first; block <= last; block++)
        {
            if (log.Blocks.Contains(block))
                continue;
            if (_writeAhead.Filling.Blocks.Contains(block))
            {
                _writeAhead.Drain();
                return;
            }
            inFlight |= _writeAhead.IsInFlight(block);
        }
        if (inFlight)
            _writeAhead.WaitInFlight();
    }

    /// <summary>
    /// Stashes <paramref name="count"/> consecutive blocks from <paramref name="firstBlock"/> on:
    /// one scattered read (preadv) puts their old content straight into the record slots of the
    /// batch, then each record is sealed; a zero block's record drops its data, and the records
    /// after it move down.
    /// </summary>
    // preadv takes at most IOV_MAX (1024 on Linux) buffers; .NET returns a short read beyond it.
    private const int MaxScatter = 1024;

    private void StashRun(RollbackLog log, long firstBlock, int count)
    {
        var fullSize = RollbackLogFormat.RecordSize(_blockSize, zero: false);
        while (count > 0)
        {
            var room = _writeAhead.Filling.RoomForRecords(fullSize);
            if (room == 0)
            {
                _writeAhead.Submit();
                continue;
            }
            var n = Math.Min(Math.Min(room, count), MaxScatter);
            var slots = _writeAhead.Filling.ReserveRecords(log, n * fullSize);
            _scatter.Clear();
            for (var i = 0; i < n; i++)
                _scatter.Add(slots.Slice(i * fullSize + RollbackLogFormat.RecordHeaderSize, _blockSize));
            _image.Read(firstBlock * _blockSize, _scatter);
            var records = slots.Span;
            var used = 0;
            for (var i = 0; i < n; i++)
            {
                var block = firstBlock + i;
                var slot = i * fullSize;
                // A block that was all zeroes (a hole, on a fresh volume) needs no data in the log.
                var zero = !records.Slice(slot + RollbackLogFormat.RecordHeaderSize, _blockSize).ContainsAnyExcept((byte)0);
                if (!zero && used != slot)
                    records.Slice(slot + RollbackLogFormat.RecordHeaderSize, _blockSize).CopyTo(records[(used + RollbackLogFormat.RecordHeaderSize)..]);
                var size = RollbackLogFormat.RecordSize(_blockSize, zero);
                RollbackLogFormat.SealRecord(records.Slice(used, size), block, zero, _blockSize, log.Seed);
                used += size;
                log.NoteRecord(block);
                _blocksStashed++;
                if (zero)
                    _zeroBlocksStashed++;
            }
            _writeAhead.Filling.RecordWritten(used);
            firstBlock += n;
            count -= n;
        }
    }

    /// <summary>
    /// Every <see cref="RollbackStoreOptions.WritebackBytes"/> of image writes, starts their writeback,
    /// so that Prepare's fsync finds most of the epoch already on its way to disk.
    /// </summary>
    private void MaybeStartWriteback()
    {
        if (_writebackBytes == 0 || _image.BytesWritten - _writebackMark < _writebackBytes)
            return;
        _writebackMark = _image.BytesWritten;
        _image.StartWriteback();
    }

    private bool IsQueued(long first, long last)
    {
        if (!_writeAhead.HasQueued)
            return false;
        for (var block = first; block <= last; block++)
            if (_writeAhead.IsQueued(block))
                return true;
        return false;
    }

    /// <summary>
    /// Queues a write behind its undo records. A full batch goes to the write-ahead thread and the
    /// write starts the next one; a write larger than a batch waits for its records to be durable
    /// and goes straight out.
    /// </summary>
    private void Enqueue(long offset, ReadOnlySpan<byte> data, long first, long last)
    {
        if (_writeAhead.Filling.TryQueue(offset, data, first, last))
            return;
        _writeAhead.Submit();
        if (_writeAhead.Filling.TryQueue(offset, data, first, last))
            return;
        _writeAhead.Drain();
        _image.Write(offset, data);
    }

    /// <summary>The write-ahead step for everything queued: records durable, then the image writes issued.</summary>
    private void FlushWriteAhead() => _writeAhead.Drain();

    private void Guard(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is not EpochOrderException and not CheckpointUnavailableException and not CannotVouchException)
        {
            _fault = e; // disk and memory may disagree now: only Recover() can tell what is true
            throw;
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // The deleter's fsync of the state file failed: that file's unsynced pages may be lost for
        // good while a retry would succeed, so the store is as failed as if the caller's had.
        _fault ??= _deleter.SyncFailure;
        if (_fault is not null)
            throw new StorageException($"the store at {Directory} failed earlier ({_fault.Message}); recover it from disk", _fault);
    }
}
