using McActors.Storage.Io;
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
/// which the queued image writes go out in order. A full batch is applied by a write-ahead thread
/// while the caller fills the next, so stashing overlaps the fsync. Writes to blocks already stashed
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
public sealed class RollbackStore : IDisposable
{
    public const string ImageFileName = "volume.img";
    public const string LogDirectoryName = "rollback";
    private const string DroppedSuffix = ".dropped";

    private readonly string _logDirectory;
    private readonly VolumeImage _image;
    private readonly StoreStateFile _state;
    private readonly BackgroundDeleter _deleter;
    private readonly SortedDictionary<long, RollbackLog> _logs = [];
    private readonly int _blockSize;
    private readonly byte[] _zeroBlock;

    private readonly WriteAheadPipeline _writeAhead;
    private readonly List<ReadOnlyMemory<byte>> _gather = [];
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
        _zeroBlock = new byte[_blockSize];
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

    /// <summary>Creates a store with a new sparse image of the descriptor's size, at checkpoint 0.</summary>
    public static RollbackStore Create(string directory, VolumeDescriptor descriptor, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        descriptor.Validate();
        System.IO.Directory.CreateDirectory(directory);
        if (File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)))
            throw new IOException($"a store already exists in {directory}");
        System.IO.Directory.CreateDirectory(Path.Combine(directory, LogDirectoryName));
        var image = VolumeImage.Create(Path.Combine(directory, ImageFileName), descriptor.SizeBytes);
        var state = StoreStateFile.Create(directory, new StoreState(0, 0, 0, 0));
        descriptor.Save(directory); // last: a directory without a descriptor is not a store
        return new RollbackStore(directory, descriptor, image, state, options);
    }

    /// <summary>
    /// Opens <paramref name="directory"/> to be resynced from the primary. Keeps its image when its
    /// descriptor matches <paramref name="descriptor"/> (id, size, block size) and the image has
    /// that size, so that only the chunks that differ need copying; else starts from a new sparse
    /// (zero) image. Drops every rollback log and the old state, then persists a state that says
    /// "resync in progress" (<see cref="SyncedFrom"/> = <see cref="long.MaxValue"/>), durable
    /// before this returns. The store then takes writes of any epoch &gt; 0, copy-before-write as
    /// usual; <see cref="MarkSynced"/> ends the resync.
    /// <para>
    /// Crash-safe: the state file goes first (a directory without one is refused by
    /// <see cref="Recover"/>), the new state comes last, and until <see cref="MarkSynced"/> it
    /// makes <see cref="Recover"/> throw <see cref="ResyncIncompleteException"/>: a crash at any
    /// instant leaves a store that knows it must resync again. No store may be open on the
    /// directory meanwhile.
    /// </para>
    /// </summary>
    public static RollbackStore OpenForResync(string directory, VolumeDescriptor descriptor, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        descriptor.Validate();
        System.IO.Directory.CreateDirectory(directory);
        RemoveStateAndLogs(directory);
        var imagePath = Path.Combine(directory, ImageFileName);
        var keep = HoldsVolume(directory, descriptor, imagePath);
        if (!keep)
        {
            // Descriptor first: a directory without one is not a store, whatever else it holds.
            File.Delete(Path.Combine(directory, VolumeDescriptor.FileName));
            File.Delete(imagePath);
            Durability.SyncDirectory(directory);
        }
        VolumeImage? image = null;
        StoreStateFile? state = null;
        try
        {
            image = keep ? VolumeImage.Open(imagePath, descriptor.SizeBytes) : VolumeImage.Create(imagePath, descriptor.SizeBytes);
            if (!keep)
                descriptor.Save(directory);
            // Create writes, fsyncs the file and then the directory: durable before we return.
            state = StoreStateFile.Create(directory, new StoreState(0, 0, 0, 0, StoreState.ResyncInProgress));
            return new RollbackStore(directory, descriptor, image, state, options);
        }
        catch
        {
            state?.Dispose();
            image?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Turns the image in <paramref name="directory"/> back into a store at checkpoint
    /// <paramref name="checkpoint"/>: for a primary left alone, whose image is exactly that checkpoint
    /// when this is called (its guest paused after the epoch's last write), so that it can keep its
    /// own rollback logs from then on. fsyncs the image, drops any old state and logs, then persists
    /// a state that vouches for <paramref name="checkpoint"/> only (committed, prepared and synced
    /// from it: nothing older can be rolled back to). Crash-safe: the state comes last, and without it
    /// the directory is a detached image. No store may be open on the directory meanwhile.
    /// </summary>
    public static RollbackStore AttachAt(string directory, VolumeDescriptor descriptor, long checkpoint, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        descriptor.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(checkpoint);
        var imagePath = Path.Combine(directory, ImageFileName);
        if (!HoldsVolume(directory, descriptor, imagePath))
            throw new StoreMetadataCorruptException(Path.Combine(directory, VolumeDescriptor.FileName),
                $"no image of volume {descriptor.VolumeId} ({descriptor.SizeBytes} B) to attach a store to in {directory}");
        RemoveStateAndLogs(directory);
        VolumeImage? image = null;
        StoreStateFile? state = null;
        try
        {
            image = VolumeImage.Open(imagePath, descriptor.SizeBytes);
            image.Faults = options.Faults;
            image.Flush(); // the checkpoint's writes are durable before any state vouches for them
            state = StoreStateFile.Create(directory, new StoreState(checkpoint, checkpoint, 0, 0, checkpoint));
            return new RollbackStore(directory, descriptor, image, state, options);
        }
        catch
        {
            state?.Dispose();
            image?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The checkpoints a store directory that no one has open can vouch for, read from its state
    /// file alone: from the oldest it can roll back to (the later of committed and synced-from) to
    /// the newest prepared. Null when it can vouch for none: no store, detached, mid-resync, or a
    /// damaged state (what <see cref="Recover"/> would then refuse). Only a full recovery checks
    /// the logs, so this is what a replica reports, not a promise.
    /// </summary>
    public static (long Oldest, long Newest)? ReadCheckpoints(string directory)
    {
        if (!File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)) || !File.Exists(Path.Combine(directory, StoreStateFile.FileName)))
            return null;
        try
        {
            using var file = StoreStateFile.Open(directory);
            var s = file.State;
            if (s.SyncedFrom == StoreState.ResyncInProgress)
                return null;
            var oldest = Math.Max(s.Committed, s.SyncedFrom);
            return oldest <= s.Prepared ? (oldest, s.Prepared) : null;
        }
        catch (Exception e) when (e is IOException or CannotVouchException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Retires a store directory whose image its owner is about to write directly (a secondary
    /// promoted to primary): removes the state file (then fsyncs the directory), then every
    /// rollback log, and keeps the image and the descriptor. Afterwards <see cref="Recover"/>
    /// refuses the directory (<see cref="StoreDetachedException"/>); only <see cref="OpenForResync"/>
    /// can use it again, keeping the image. Crash-safe in that order: once the state is gone the
    /// logs are never applied. The store must be disposed first (or never opened).
    /// </summary>
    public static void Detach(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"no store directory {directory} to detach");
        RemoveStateAndLogs(directory);
    }

    /// <summary>
    /// Opens a store after a crash or a clean stop, rebuilding its state from the files: the
    /// committed and prepared checkpoints, every uncommitted log and its first-touch set. A torn
    /// record past a log's durable length (a crash mid-append) is cut off. Damage anywhere else
    /// throws a <see cref="CannotVouchException"/> and leaves every file as it was.
    /// </summary>
    public static RollbackStore Recover(string directory, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        var descriptor = VolumeDescriptor.Load(directory);
        if (!File.Exists(Path.Combine(directory, StoreStateFile.FileName)))
            throw new StoreDetachedException(directory);
        var logDirectory = Path.Combine(directory, LogDirectoryName);
        var opened = new List<(RollbackLog Log, ScanOutcome Scan)>();
        VolumeImage? image = null;
        StoreStateFile? state = null;
        try
        {
            image = VolumeImage.Open(Path.Combine(directory, ImageFileName), descriptor.SizeBytes);
            state = StoreStateFile.Open(directory);
            if (state.State.SyncedFrom == StoreState.ResyncInProgress)
                throw new ResyncIncompleteException(directory, null, state.State.SyncedFrom, "recovery");
            System.IO.Directory.CreateDirectory(logDirectory);
            var toDelete = new List<string>();
            var stale = new List<string>();
            long records = 0, torn = 0;
            foreach (var path in System.IO.Directory.EnumerateFiles(logDirectory).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(path);
                if (name.EndsWith(DroppedSuffix, StringComparison.Ordinal))
                {
                    toDelete.Add(path);
                    continue;
                }
                if (!RollbackLogFormat.TryParseFileName(name, out var epoch))
                    continue; // not ours; left alone
                if (epoch <= state.State.Committed)
                {
                    toDelete.Add(path); // committed: its delete was queued, or done but not yet durable
                    continue;
                }
                var log = RollbackLog.Open(path, descriptor, epoch, writable: true);
                if (log.Lineage > state.State.Lineage)
                    throw new RollbackLogHeaderCorruptException(path,
                        $"log of lineage {log.Lineage} is newer than the store's lineage {state.State.Lineage}");
                if (state.State.IsStale(log.Lineage, epoch))
                {
                    log.Dispose();
                    stale.Add(path); // undo data of epochs that a finished rollback already undid
                    continue;
                }
                opened.Add((log, default));
                var scan = log.Scan((_, refs) =>
                {
                    foreach (var r in refs)
                        log.NoteRecord(r.BlockIndex);
                });
                torn += CheckScan(log, scan);
                records += scan.Records;
                opened[^1] = (log, scan);
            }
            // Everything checked: only now touch the files.
            toDelete.AddRange(RetireLogs(logDirectory, stale));
            foreach (var (log, scan) in opened)
            {
                if (scan.ValidEnd < scan.FileLength)
                    log.TruncateTo(scan.ValidEnd);
                else
                    log.SetRecovered(scan.ValidEnd, log.Records);
            }
            var store = new RollbackStore(directory, descriptor, image, state, options)
            {
                Recovery = new RecoveryReport(state.State.Committed, state.State.Prepared,
                    [.. opened.Select(o => o.Log.Epoch)], records, torn, toDelete.Count),
            };
            foreach (var (log, _) in opened)
            {
                store._logs.Add(log.Epoch, log);
                store._currentEpoch = Math.Max(store._currentEpoch, log.Epoch);
            }
            foreach (var path in toDelete)
                store._deleter.Enqueue(path);
            return store;
        }
        catch
        {
            foreach (var (log, _) in opened)
                log.Dispose();
            state?.Dispose();
            image?.Dispose();
            throw;
        }
    }

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
            for (var block = first; block <= last; block++)
            {
                if (log is not null && log.Blocks.Contains(block))
                    continue;
                log ??= CreateLog(epoch);
                // The old content must include every queued write to the block.
                if (_writeAhead.Filling.Blocks.Contains(block))
                    _writeAhead.Drain();
                else if (_writeAhead.IsInFlight(block))
                    _writeAhead.WaitInFlight();
                Stash(log, block);
                stashed = true;
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

    /// <summary>
    /// Makes checkpoint <paramref name="epoch"/> durable: every write so far, every undo record and
    /// the prepared number reach the disk before this returns. Closes the epochs up to it.
    /// Repeating it, or preparing an older checkpoint, changes nothing.
    /// </summary>
    public void Prepare(long epoch)
    {
        if (!IsNewPrepare(epoch))
            return;
        DrainWriteAhead();
        FlushImage();
        RecordPrepared(epoch);
    }

    /// <summary>
    /// Marks checkpoint <paramref name="epoch"/> committed and drops the logs of every epoch up to it,
    /// in constant time: the files are unlinked in the background after the new state is durable.
    /// A repeated or late commit changes nothing; a commit of an unprepared epoch is refused.
    /// A commit of a checkpoint before <see cref="SyncedFrom"/> changes nothing either: it was the
    /// other replicas' to commit (a coordinator re-sending its last commit to a joiner, say).
    /// </summary>
    public void Commit(long epoch)
    {
        ThrowIfUnusable();
        if (epoch <= CommittedEpoch || epoch < SyncedFrom)
            return;
        if (epoch > PreparedEpoch)
            throw new EpochOrderException($"commit of epoch {epoch}, but only epochs up to {PreparedEpoch} are prepared here");
        Guard(() =>
        {
            _state.Write(_state.State with { Committed = epoch });
            while (_logs.Count > 0)
            {
                var (oldest, log) = _logs.First();
                if (oldest > epoch)
                    break;
                _logs.Remove(oldest);
                log.Dispose();
                _deleter.Enqueue(log.Path);
            }
        });
    }

    /// <summary>
    /// Brings the image back to checkpoint <paramref name="checkpoint"/>: every log newer than it is
    /// checked, then applied newest first, then the image is flushed and the logs are retired.
    /// Interrupted at any point and run again, it gives the same image.
    /// </summary>
    public RollbackResult RollbackTo(long checkpoint)
    {
        ThrowIfUnusable();
        if (checkpoint < SyncedFrom)
            throw new ResyncIncompleteException(Directory, checkpoint, SyncedFrom, "rollback");
        if (checkpoint < CommittedEpoch)
            throw new CheckpointUnavailableException(checkpoint, CommittedEpoch, PreparedEpoch,
                "a later checkpoint is committed here and the logs back to it are gone");
        if (checkpoint > PreparedEpoch)
            throw new CheckpointUnavailableException(checkpoint, CommittedEpoch, PreparedEpoch,
                "it was never prepared here, so its writes may be incomplete");
        var started = System.Diagnostics.Stopwatch.StartNew();
        RollbackResult? result = null;
        Guard(() =>
        {
            FlushWriteAhead();
            var undo = _logs.Values.Where(l => l.Epoch > checkpoint).OrderByDescending(l => l.Epoch).ToList();
            foreach (var log in undo)
                CheckScan(log, log.Scan(null)); // damage anywhere: throw before writing anything
            long blocks = 0;
            foreach (var log in undo)
            {
                blocks += log.Scan((chunk, refs) => ApplyRecords(chunk, refs)).Records;
                CrashHook?.Invoke(CrashPoint.LogApplied);
            }
            _image.Flush();
            // The image is at the checkpoint. A new lineage makes the applied logs stale at once
            // (Recover drops them), so a crash can never re-apply them over later epochs' writes.
            _state.Write(_state.State with { Prepared = checkpoint, Lineage = _state.State.Lineage + 1, RollbackPoint = checkpoint });
            _state.Sync();
            _currentEpoch = checkpoint;
            CrashHook?.Invoke(CrashPoint.StateAdvanced);
            foreach (var log in undo)
            {
                log.Dispose();
                _logs.Remove(log.Epoch);
            }
            foreach (var path in RetireLogs(_logDirectory, undo.Select(l => l.Path)))
                _deleter.Enqueue(path);
            result = new RollbackResult(checkpoint, undo.Count, blocks, blocks * _blockSize, started.Elapsed);
        });
        return result!;
    }

    /// <summary>
    /// Ends a resync: from checkpoint <paramref name="epoch"/> on, the image is the primary's (every
    /// differing chunk was copied before the primary's "sync complete at <paramref name="epoch"/>").
    /// Makes every write so far durable, then the new <see cref="SyncedFrom"/>. Repeating it with
    /// the same epoch changes nothing; a store not resyncing, or synced from another epoch, refuses.
    /// </summary>
    public void MarkSynced(long epoch)
    {
        ThrowIfUnusable();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(epoch);
        if (epoch == SyncedFrom)
            return;
        if (SyncedFrom != StoreState.ResyncInProgress)
            throw new EpochOrderException($"the store at {Directory} is not resyncing (synced from {SyncedFrom}); it cannot be marked synced from {epoch}");
        Guard(() =>
        {
            // The copies must be on disk before the state vouches for them: after a power loss, a
            // store synced from E whose copies were lost would prepare E with a stale image.
            FlushWriteAhead();
            _image.Flush();
            _state.Write(_state.State with { SyncedFrom = epoch });
            _state.Sync();
        });
    }

    /// <summary>The digest of the current image (queued writes included), for a resync; see <see cref="ImageDigest"/>.</summary>
    public UInt128[] ComputeDigest(int chunkBytes)
    {
        ThrowIfUnusable();
        if (_writeAhead.HasQueued)
            Guard(FlushWriteAhead);
        return ImageDigest.Compute(_image.Handle, _image.Path, Descriptor.SizeBytes, chunkBytes);
    }

    // Prepare in three steps, for a caller that lets writes of the next epoch in while the image is
    // fsynced (RollbackStoreActor): DrainWriteAhead, FlushImage, RecordPrepared. Prepare is all three at once.

    /// <summary>
    /// Step 1 of a prepare: every undo record so far is durable and every queued image write is
    /// issued (the write-ahead rule holds: records first). Not thread-safe, like every other method.
    /// </summary>
    public void DrainWriteAhead()
    {
        ThrowIfUnusable();
        Guard(FlushWriteAhead);
    }

    /// <summary>
    /// Step 2 of a prepare: fsync of the image. The one method that may run while another thread
    /// calls <see cref="Write"/> (it only uses the file handle; such writes may or may not be made
    /// durable by it), but never concurrently with dispose, recovery or rollback.
    /// </summary>
    public void FlushImage()
    {
        ThrowIfUnusable();
        Guard(_image.Flush);
    }

    /// <summary>
    /// Step 3 of a prepare: records checkpoint <paramref name="epoch"/> as prepared. Only for a caller
    /// that ran <see cref="DrainWriteAhead"/> then <see cref="FlushImage"/> after the last write of
    /// every epoch up to <paramref name="epoch"/> reached this store: those writes are durable.
    /// </summary>
    public void RecordPrepared(long epoch)
    {
        if (!IsNewPrepare(epoch))
            return;
        Guard(() =>
        {
            _state.Write(_state.State with { Prepared = epoch });
            _state.Sync();
            _currentEpoch = Math.Max(_currentEpoch, epoch);
        });
    }

    /// <summary>False for a checkpoint prepared already (a repeat changes nothing); refuses one before <see cref="SyncedFrom"/>.</summary>
    private bool IsNewPrepare(long epoch)
    {
        ThrowIfUnusable();
        if (epoch < SyncedFrom)
            throw new ResyncIncompleteException(Directory, epoch, SyncedFrom, "prepare");
        return epoch > PreparedEpoch;
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

    /// <summary>
    /// The state file first, durably (from then on the logs can never be applied: Recover refuses),
    /// then every log and dropped log, durably.
    /// </summary>
    private static void RemoveStateAndLogs(string directory)
    {
        File.Delete(Path.Combine(directory, StoreStateFile.FileName));
        Durability.SyncDirectory(directory);
        var logDirectory = Path.Combine(directory, LogDirectoryName);
        System.IO.Directory.CreateDirectory(logDirectory);
        var removed = false;
        foreach (var path in System.IO.Directory.EnumerateFiles(logDirectory))
        {
            var name = Path.GetFileName(path);
            if (!name.EndsWith(DroppedSuffix, StringComparison.Ordinal) && !RollbackLogFormat.TryParseFileName(name, out _))
                continue; // not ours; left alone, as Recover does
            File.Delete(path);
            removed = true;
        }
        if (removed)
            Durability.SyncDirectory(logDirectory);
    }

    /// <summary>True if the directory holds an image of exactly this volume (same id, size and block size).</summary>
    private static bool HoldsVolume(string directory, VolumeDescriptor descriptor, string imagePath)
    {
        if (!File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)) || !File.Exists(imagePath))
            return false;
        try
        {
            return VolumeDescriptor.Load(directory) == descriptor && new FileInfo(imagePath).Length == descriptor.SizeBytes;
        }
        catch (CannotVouchException)
        {
            return false; // a damaged descriptor: start from a new image
        }
    }

    /// <summary>
    /// Renames stale logs out of the way (the next epoch's log may need the name at once) and makes
    /// the renames durable; returns the new names, for the background deleter.
    /// </summary>
    private static List<string> RetireLogs(string logDirectory, IEnumerable<string> paths)
    {
        var retired = new List<string>();
        foreach (var path in paths)
        {
            var target = $"{path}.{Guid.NewGuid():N}{DroppedSuffix}";
            File.Move(path, target);
            retired.Add(target);
        }
        if (retired.Count > 0)
            Durability.SyncDirectory(logDirectory);
        return retired;
    }

    private RollbackLog CreateLog(long epoch)
    {
        var log = RollbackLog.Create(_logDirectory, Descriptor, epoch, _state.State.Lineage);
        _logs.Add(epoch, log);
        return log;
    }

    private void Stash(RollbackLog log, long block)
    {
        var fullSize = RollbackLogFormat.RecordSize(_blockSize, zero: false);
        if (!_writeAhead.Filling.HasRoomForRecord(fullSize))
            _writeAhead.Submit();
        var record = _writeAhead.Filling.ReserveRecord(log, fullSize);
        var oldContent = record[RollbackLogFormat.RecordHeaderSize..];
        _image.Read(block * _blockSize, oldContent);
        // A block that was all zeroes (a hole, on a fresh volume) needs no data in the log.
        var zero = !oldContent.ContainsAnyExcept((byte)0);
        RollbackLogFormat.SealRecord(record, block, zero, _blockSize, log.Seed);
        _writeAhead.Filling.RecordWritten(RollbackLogFormat.RecordSize(_blockSize, zero));
        log.NoteRecord(block);
        _blocksStashed++;
        if (zero)
            _zeroBlocksStashed++;
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

    /// <summary>Writes the records of one scan chunk back into the image, a run of consecutive blocks per pwritev.</summary>
    private void ApplyRecords(ReadOnlyMemory<byte> chunk, IReadOnlyList<LogRecordRef> records)
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
                _gather.Add(records[j].Zero ? _zeroBlock : chunk.Slice(records[j].DataOffset, _blockSize));
                j++;
            }
            _image.Write(start * _blockSize, _gather);
            i = j;
        }
    }

    /// <summary>
    /// Judges a scan against the log's watermark. Returns the torn bytes past the durable length
    /// (a crash mid-append, safe to cut); throws if records below it are damaged or missing.
    /// </summary>
    private static long CheckScan(RollbackLog log, ScanOutcome scan)
    {
        if (scan.ValidEnd >= log.DurableLength)
            return scan.FileLength - scan.ValidEnd;
        if (scan.Stop == ScanStop.InvalidRecord)
            throw new RollbackLogChecksumException(log.Path, scan.ValidEnd,
                $"bad magic, flags, block index or checksum below the durable length {log.DurableLength}");
        throw new RollbackLogTruncatedException(log.Path, scan.FileLength, log.DurableLength);
    }

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
