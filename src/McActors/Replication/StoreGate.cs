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
/// Which store the gate holds: <see cref="Incarnation"/> rises on every open and rollback;
/// <see cref="Checkpoint"/> is the checkpoint the image was at when it did.
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

    public StoreView View
    {
        get
        {
            lock (_lock)
                return new StoreView(_incarnation, _checkpoint, _store is not null);
        }
    }

    /// <summary>
    /// Applies a write of <paramref name="epoch"/> if the store is still <paramref name="incarnation"/>;
    /// throws <see cref="StoreRewoundException"/> if it changed, <see cref="StoreClosedException"/> if none is open.
    /// </summary>
    public void Write(long incarnation, long epoch, long offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            var store = _store ?? throw new StoreClosedException();
            if (incarnation != _incarnation)
                throw new StoreRewoundException(new StoreView(_incarnation, _checkpoint, true));
            store.Write(epoch, offset, data);
        }
    }

    /// <summary>
    /// fsyncs the store's image without holding the gate, so the stream's writes go on meanwhile.
    /// Only for the store actor: the one that disposes and rolls the store back, so it stays open.
    /// </summary>
    internal void FlushImageUnlocked()
    {
        RollbackStore store;
        lock (_lock)
            store = _store ?? throw new StoreClosedException();
        store.FlushImage();
    }

    /// <summary>Runs an operation on the open store under the lock (store actor only).</summary>
    internal T Run<T>(Func<RollbackStore, T> operation)
    {
        lock (_lock)
            return operation(_store ?? throw new StoreClosedException());
    }

    /// <summary>Publishes a newly opened store as a new incarnation; returns it.</summary>
    internal long Publish(RollbackStore store)
    {
        lock (_lock)
        {
            _store = store;
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

    /// <summary>Takes the store out of the gate (if it is still the published one); returns it, for disposal.</summary>
    internal RollbackStore? Withdraw()
    {
        lock (_lock)
        {
            var store = _store;
            _store = null;
            return store;
        }
    }
}
