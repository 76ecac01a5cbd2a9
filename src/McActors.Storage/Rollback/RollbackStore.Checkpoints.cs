using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

// RollbackStore: the checkpoint protocol over the image and its logs (prepare, in one step or
// three; commit; rollback; the end of a resync; the digest a resync compares).
public sealed partial class RollbackStore
{
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
                LogScans.TornBytes(log, log.Scan(null)); // damage anywhere: throw before writing anything
            long blocks = 0;
            for (var i = 0; i < undo.Count; i++)
            {
                // undo is newest first: the logs after i are older, and their stashes win.
                blocks += _applier.Apply(undo[i], [.. undo.Skip(i + 1).Select(l => l.Blocks)]);
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
            foreach (var path in StoreDirectory.RetireLogs(_logDirectory, undo.Select(l => l.Path)))
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
}
