using McActors.Protocol;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// The checkpoints of a primary that no secondary follows. Every checkpoint it commits then exists
/// on its own disk only, so it keeps them the way a secondary does: its image becomes a rollback
/// store (copy-before-write logs per epoch in <c>store/</c>) from the first checkpoint it closes
/// alone, each later checkpoint is prepared (logs, image, state, guest state durable) before the
/// primary reports it closed, and a commit drops what it covers. A primary that dies alone and
/// restarts therefore opens this store like a secondary's, rolls back to the last committed
/// checkpoint and is promoted again: the volume does not wait for good (DESIGN.md, degraded mode).
/// Checkpoints it closed while a secondary followed are not in this store: until one it prepared
/// here commits, it cannot vouch for the last committed one. The store stays until a commit that a
/// secondary prepared covers every checkpoint prepared here (before that, the secondary may still
/// be lost and these be the only copies).
/// Not thread-safe: the primary actor owns it.
/// </summary>
public sealed class PrimaryAloneCheckpoints : IDisposable
{
    private readonly RollbackStore _store;
    private readonly GuestStateFiles _states;
    // The guest states saved here (others in states/, such as a stopped guest's, are not ours to delete).
    private readonly SortedSet<long> _saved;

    private PrimaryAloneCheckpoints(RollbackStore store, GuestStateFiles states, SortedSet<long> saved)
    {
        _store = store;
        _states = states;
        _saved = saved;
    }

    /// <summary>The first checkpoint this store holds: the one it was attached at.</summary>
    public long From => _store.SyncedFrom;

    /// <summary>The newest checkpoint prepared here.</summary>
    public long Prepared => _store.PreparedEpoch;

    /// <summary>
    /// Attaches a store to the primary's image, which must be exactly checkpoint
    /// <paramref name="checkpoint"/> (the guest paused after its last write), and saves that
    /// checkpoint's guest state durably: from here on the primary can be rolled back to it.
    /// </summary>
    public static PrimaryAloneCheckpoints Attach(string dataDirectory, VolumeSpec volume, long checkpoint, byte[]? state, RollbackStoreOptions options)
    {
        var descriptor = new VolumeDescriptor(volume.VolumeId, volume.SizeBytes, volume.BlockSize);
        var states = GuestStateFiles.Of(dataDirectory);
        var saved = new SortedSet<long>();
        // The guest state first: the store's state file is what vouches for the checkpoint, so it comes last.
        SaveState(states, saved, checkpoint, state);
        var store = RollbackStore.AttachAt(PrimaryVolumeFiles.ImageDirectory(dataDirectory), descriptor, checkpoint, options);
        return new PrimaryAloneCheckpoints(store, states, saved);
    }

    public void Write(long epoch, long offset, ReadOnlySpan<byte> data) => _store.Write(epoch, offset, data);

    public void Read(long offset, Span<byte> buffer) => _store.Read(offset, buffer);

    /// <summary>Every write so far is in the image file (the write-ahead queue drained): for readers of the file itself.</summary>
    public void Drain() => _store.DrainWriteAhead();

    /// <summary>Makes checkpoint <paramref name="epoch"/> durable here: its guest state, then logs, image and store state.</summary>
    public void Prepare(long epoch, byte[]? state)
    {
        SaveState(_states, _saved, epoch, state);
        _store.Prepare(epoch);
    }

    /// <summary>Checkpoint <paramref name="epoch"/> committed: its logs and the guest states before it go.</summary>
    public void Commit(long epoch)
    {
        if (epoch > _store.PreparedEpoch)
            return; // closed while a secondary followed, so not prepared here: the store still vouches only up to Prepared
        _store.Commit(epoch);
        DeleteStates(_saved.Where(e => e < epoch).ToList());
    }

    /// <summary>
    /// A secondary holds the checkpoints again: the image goes back to being written directly (the
    /// store's state and logs are removed, so it vouches for nothing), and the saved states go.
    /// </summary>
    public void Detach(string dataDirectory)
    {
        // Every queued write into the image file first, or it is lost with the store (Dispose skips
        // its flush after a failure, e.g. the deleter's fsync: this throws it instead).
        _store.Flush();
        _store.Dispose();
        RollbackStore.Detach(PrimaryVolumeFiles.ImageDirectory(dataDirectory));
        DeleteStates([.. _saved]);
    }

    /// <summary>The guest state of <paramref name="epoch"/> stays when its checkpoint is committed past (a stopped guest's).</summary>
    public void Keep(long epoch) => _saved.Remove(epoch);

    public void Dispose() => _store.Dispose();

    private static void SaveState(GuestStateFiles states, SortedSet<long> saved, long epoch, byte[]? state)
    {
        if (state is null)
            return;
        states.Write(epoch, state);
        states.MakeDurable([epoch]);
        saved.Add(epoch);
    }

    private void DeleteStates(IReadOnlyCollection<long> epochs)
    {
        foreach (var epoch in epochs)
        {
            File.Delete(_states.PathOf(epoch));
            _saved.Remove(epoch);
        }
    }
}
