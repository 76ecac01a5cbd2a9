using McActors.Storage;
using McActors.Storage.Rollback;

namespace McActors.Replication;

/// <summary>The gate has no open store (the store actor is starting, restarting or stopped).</summary>
public sealed class StoreClosedException() : InvalidOperationException("no rollback store is open: the store actor is starting, restarting or stopped");

/// <summary>
/// The store was reopened or rolled back since the caller looked: the writes it applied after
/// <see cref="Checkpoint"/> are gone, so its stream must rewind to that checkpoint.
/// </summary>
public sealed class StoreRewoundException(StoreView current)
    : InvalidOperationException($"the store was reopened or rolled back (incarnation {current.Incarnation}): its image is at checkpoint {current.Checkpoint}")
{
    public StoreView Current { get; } = current;
}

/// <summary>
/// Which store the gate holds: <see cref="Incarnation"/> rises on every open and rollback, and
/// already when a store is withdrawn (a restart begins) or fails, so that nothing applied to the old
/// store passes for the next one; <see cref="Checkpoint"/> is the checkpoint the image was at.
/// <see cref="Open"/> is false while no usable store is published (closed, or failed and waiting for its restart).
/// </summary>
public readonly record struct StoreView(long Incarnation, long Checkpoint, bool Open);

/// <summary>
/// Thread-safe door to the one <see cref="RollbackStore"/> of a secondary (which is not
/// thread-safe). The data-plane handler writes through it directly on the hot path (16k writes/s
/// of 64 KiB through a mailbox would be copies and churn); the store actor publishes the store
/// and runs Prepare/Commit/Rollback through it, under the same lock.
/// </summary>
public sealed class StoreGate
{
    private readonly Lock _lock = new();
    private RollbackStore? _store;
    private long _incarnation;
    private long _checkpoint;

    // The published store failed (a write or fsync threw): it stays here only to be disposed by its
    // actor's restart; the stream may not write to it, nor may a prepare vouch for it.
    private bool _failed;

    public StoreView View
    {
        get
        {
            lock (_lock)
                return CurrentView();
        }
    }

    private StoreView CurrentView() => new(_incarnation, _checkpoint, _store is not null && !_failed);

    /// <summary>
    /// Applies a write of <paramref name="epoch"/> if the store is still <paramref name="incarnation"/>;
    /// throws <see cref="StoreRewoundException"/> if it changed, <see cref="StoreClosedException"/> if none is open.
    /// </summary>
    public void Write(long incarnation, long epoch, long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            var store = _store is { } s && !_failed ? s : throw new StoreClosedException();
            if (incarnation != _incarnation)
                throw new StoreRewoundException(CurrentView());
            try
            {
                store.Write(epoch, offset, data);
            }
            catch (Exception e) when (e is not EpochOrderException)
            {
                // The store is unusable until reopened from disk (RollbackStore is sticky-faulted):
                // a new incarnation now, before its actor even hears of it.
                Fail();
                throw;
            }
        }
    }

    /// <summary>
    /// fsyncs the store's image without holding the gate, so the stream's writes go on meanwhile.
    /// Only for the store actor: the one that disposes and rolls the store back, so it stays open.
    /// A failed fsync is fatal for the incarnation: on Linux the pages it did not write are marked
    /// clean and a second fsync would succeed without them, so the gate fails at once (no write or
    /// prepare reaches that store again) and the exception goes on to restart the store from disk.
    /// </summary>
    /// <param name="incarnation">The incarnation the prepare is for: a changed one throws <see cref="StoreRewoundException"/>.</param>
    internal void FlushImageUnlocked(long incarnation)
    {
        RollbackStore store;
        lock (_lock)
            store = Usable(incarnation);
        try
        {
            store.FlushImage();
        }
        catch (Exception)
        {
            lock (_lock)
                if (ReferenceEquals(store, _store))
                    Fail();
            throw;
        }
    }

    /// <summary>Runs an operation on the open store under the lock (store actor only).</summary>
    internal T Run<T>(Func<RollbackStore, T> operation)
    {
        lock (_lock)
            return operation(_store ?? throw new StoreClosedException());
    }

    /// <summary>
    /// Runs an operation of a prepare under the lock, only if the store is still the usable store of
    /// <paramref name="incarnation"/>; else throws <see cref="StoreRewoundException"/> (or <see cref="StoreClosedException"/>).
    /// </summary>
    internal T Run<T>(long incarnation, Func<RollbackStore, T> operation)
    {
        lock (_lock)
        {
            var store = Usable(incarnation);
            try
            {
                return operation(store);
            }
            catch (Exception e) when (e is not EpochOrderException)
            {
                Fail();
                throw;
            }
        }
    }

    private RollbackStore Usable(long incarnation)
    {
        var store = _store ?? throw new StoreClosedException();
        if (_failed || incarnation != _incarnation)
            throw new StoreRewoundException(CurrentView());
        return store;
    }

    /// <summary>The store failed: a new (closed) incarnation, so that nothing done to it counts for its successor.</summary>
    private void Fail()
    {
        if (_failed)
            return;
        _failed = true;
        _incarnation++;
    }

    /// <summary>Publishes a newly opened store as a new incarnation; returns it.</summary>
    internal long Publish(RollbackStore store)
    {
        lock (_lock)
        {
            _store = store;
            _failed = false;
            _checkpoint = store.PreparedEpoch;
            return ++_incarnation;
        }
    }

    /// <summary>Rolls the store back and starts a new incarnation at the checkpoint, atomically for writers.</summary>
    internal (RollbackResult Result, long Incarnation) Rollback(long checkpoint)
    {
        lock (_lock)
        {
            var store = _store ?? throw new StoreClosedException();
            try
            {
                return (store.RollbackTo(checkpoint), _incarnation + 1);
            }
            finally
            {
                // Even a failed rollback may have changed the image: writers must rewind either way.
                _checkpoint = Math.Min(store.PreparedEpoch, checkpoint);
                _incarnation++;
            }
        }
    }

    /// <summary>
    /// Takes the store out of the gate (if it is still the published one); returns it, for disposal.
    /// The incarnation rises here, as the restart begins, not at the next publish: a frame applied
    /// to the old store and checked while the gate is empty must not pass for the recovered one.
    /// </summary>
    internal RollbackStore? Withdraw()
    {
        lock (_lock)
        {
            var store = _store;
            if (store is not null && !_failed)
                _incarnation++;
            _store = null;
            _failed = false;
            return store;
        }
    }
}
