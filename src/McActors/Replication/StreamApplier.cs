using Akka.Actor;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Storage;

namespace McActors.Replication;

/// <summary>The stream cannot be applied as sent: the connection is closed, and the secondary told.</summary>
public sealed class StreamBrokenException(string message) : Exception(message);

/// <summary>
/// The secondary's data-plane handler: applies the primary's stream to the store through the
/// <see cref="StoreGate"/> (on the listener's thread, no actor hop), checks each epoch's marker
/// against what it applied, writes guest states to files, and tells the SecondaryActor when a
/// checkpoint's marker and state have both arrived.
/// <para>
/// Sequences: it tracks the last sequence applied, which a (re)connecting primary is told;
/// frames at or below it are duplicates of a resend and skipped. When the store is reopened or
/// rolled back (a new gate incarnation), everything applied after the store's checkpoint c is
/// gone: the applier rewinds to just before the first frame of an epoch after c, closes the
/// connection, and the primary resumes from there. Frames of epochs ≤ c are already in the image
/// (and state c on disk) and skipped.
/// </para>
/// <para>
/// Resync (a replica joining a running generation): the stream starts mid-way, at the sequence
/// the primary's handshake names; copy frames write the primary's chunks without counting as
/// writes; the first epoch is partial, so its marker's counts are not checked; "sync complete"
/// goes to the SecondaryActor, which makes the store vouch from that checkpoint on.
/// </para>
/// The listener calls it one frame at a time; the lock is for the actor's calls (status,
/// reassignment, pruning), not for the stream.
/// </summary>
public sealed class StreamApplier : IDataPlaneHandler
{
    private readonly Lock _sync = new();
    private readonly StoreGate _gate;
    private readonly IActorRef _secondary;
    private readonly GuestStateFiles _states;
    private readonly SortedDictionary<long, EpochProgress> _epochs = [];
    private long _generation;
    private long _incarnation;
    private long _floor;
    private long _lastApplied;
    private long _writes;
    private long _bytes;
    private readonly bool _joining;
    private long _joinEpoch = -1;
    private bool _synced;
    private long _copiedBytes;

    public StreamApplier(StoreGate gate, IActorRef secondary, GuestStateFiles states, long generation, bool joining = false)
    {
        _gate = gate;
        _secondary = secondary;
        _states = states;
        _generation = generation;
        _joining = joining;
        Adopt(gate.View);
    }

    /// <summary>Bytes of resync copies applied.</summary>
    public long CopiedBytes => Interlocked.Read(ref _copiedBytes);

    public long Generation
    {
        get { lock (_sync) return _generation; }
    }

    public long LastAppliedSequence
    {
        get { lock (_sync) return _lastApplied; }
    }

    public long WritesApplied => Interlocked.Read(ref _writes);

    public long BytesApplied => Interlocked.Read(ref _bytes);

    /// <summary>A new generation's primary will stream from sequence 1, resuming after the store's checkpoint.</summary>
    public void Reassign(long generation)
    {
        lock (_sync)
        {
            _generation = generation;
            _epochs.Clear();
            Adopt(_gate.View);
            _lastApplied = 0;
        }
    }

    /// <summary>Checkpoint <paramref name="epoch"/> committed: forget older epochs (a rollback never goes below it).</summary>
    public void Committed(long epoch)
    {
        lock (_sync)
        {
            while (_epochs.Count > 0 && _epochs.First().Key < epoch)
                _epochs.Remove(_epochs.First().Key);
        }
    }

    public ValueTask<long> OnConnectedAsync(HandshakeFrame primary, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            CheckGeneration(primary.Generation, "connection");
            var view = _gate.View;
            if (!view.Open)
                throw new StoreClosedException();
            if (view.Incarnation != _incarnation)
                Rewind(view);
            // A joining replica picks the stream up where the primary is; a resent stream (after a
            // reconnection) goes on from what it applied.
            if (_joining && _lastApplied == 0)
                _lastApplied = primary.Sequence - 1;
            return ValueTask.FromResult(_lastApplied);
        }
    }

    public ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (!Admit(write.Generation, write.Sequence, write.Epoch, "write"))
                return ValueTask.CompletedTask;
            ApplyToStore(write.Epoch, write.Offset, data.Span, write.Sequence);
            var progress = Progress(write.Epoch, write.Sequence);
            progress.Writes++;
            progress.Bytes += write.Length;
            Interlocked.Increment(ref _writes);
            Interlocked.Add(ref _bytes, write.Length);
            _lastApplied = write.Sequence;
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (!Admit(marker.Generation, marker.Sequence, marker.Epoch, "marker"))
                return ValueTask.CompletedTask;
            CheckIncarnation();
            var progress = Progress(marker.Epoch, marker.Sequence);
            // The epoch a joiner came in during is partial here: its earlier writes reached the image as copies.
            var partial = _joining && marker.Epoch <= _joinEpoch;
            if (!partial && (progress.Writes != marker.WritesInEpoch || progress.Bytes != marker.BytesInEpoch))
                throw Broken(marker.Epoch, $"marker of epoch {marker.Epoch} counts {marker.WritesInEpoch} writes / {marker.BytesInEpoch} B, " +
                    $"this secondary applied {progress.Writes} writes / {progress.Bytes} B");
            progress.MarkerSequence = marker.Sequence;
            _lastApplied = marker.Sequence;
            NotifyIfComplete(marker.Epoch, progress);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (!Admit(state.Generation, state.Sequence, state.Epoch, "guest state"))
                return ValueTask.CompletedTask;
            CheckIncarnation();
            long captured;
            try
            {
                // Synthetic or opaque (NBD, custom guests): either way intact and of this checkpoint.
                captured = GuestStateBlob.EpochOf(blob.Span);
            }
            catch (GuestStateCorruptException e)
            {
                throw Broken(state.Epoch, $"guest state of checkpoint {state.Epoch}: {e.Message}");
            }
            if (captured != state.Epoch)
                throw Broken(state.Epoch, $"the guest state sent for checkpoint {state.Epoch} was captured at checkpoint {captured}");
            _states.Write(state.Epoch, blob.Span);
            var progress = Progress(state.Epoch, state.Sequence);
            progress.State = true;
            _lastApplied = state.Sequence;
            NotifyIfComplete(state.Epoch, progress);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask OnCopyAsync(CopyFrame copy, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            CheckGeneration(copy.Generation, "copy");
            if (!_joining)
                throw Broken(copy.Epoch, $"a resync copy (offset {copy.Offset}) arrived, but this secondary is not resyncing");
            NoteJoinEpoch(copy.Epoch);
            ApplyToStore(copy.Epoch, copy.Offset, data.Span, sequence: null);
            Interlocked.Add(ref _copiedBytes, copy.Length);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask OnSyncCompleteAsync(SyncCompleteFrame syncComplete, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            CheckGeneration(syncComplete.Generation, "sync complete");
            if (!_joining)
                throw Broken(syncComplete.Epoch, "a resync's sync-complete arrived, but this secondary is not resyncing");
            NoteJoinEpoch(syncComplete.Epoch);
            _synced = true;
            _secondary.Tell(new StreamSyncCompleted(_generation, syncComplete.Epoch));
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>A joiner whose connection ends before sync-complete holds a partial copy: the resync failed.</summary>
    public void OnDisconnected(long generation, Exception? error)
    {
        lock (_sync)
        {
            if (_joining && !_synced && generation == _generation)
                _secondary.Tell(new SecondaryStreamBroken(generation, Math.Max(_joinEpoch, 0),
                    $"the primary's connection ended before the resync completed ({error?.Message ?? "closed"})"));
        }
    }

    private void NoteJoinEpoch(long epoch)
    {
        if (_joining && _joinEpoch < 0)
            _joinEpoch = epoch;
    }

    /// <summary>
    /// Writes into the store through the gate, for a write or a resync copy alike: a rewound store
    /// rewinds the stream, an epoch the store refuses breaks it, any other failure is the store's
    /// (the secondary fails it so that its supervisor decides).
    /// </summary>
    /// <param name="sequence">The write's sequence; null for a copy (it has none). Named only in an error, so the hot path formats nothing.</param>
    private void ApplyToStore(long epoch, long offset, ReadOnlySpan<byte> data, long? sequence)
    {
        try
        {
            _gate.Write(_incarnation, epoch, offset, data);
        }
        catch (StoreRewoundException e)
        {
            Rewind(e.Current);
            throw;
        }
        catch (EpochOrderException e)
        {
            var what = sequence is { } n ? $"write {n}" : $"copy at {offset}";
            throw Broken(epoch, $"{what} refused by the store: {e.Message}");
        }
        catch (Exception e) when (e is not StoreClosedException)
        {
            _secondary.Tell(new StoreWriteFailed(e));
            throw;
        }
    }

    /// <summary>Checks a frame; false for one to skip (a duplicate, or of an epoch already in the image).</summary>
    private bool Admit(long generation, long sequence, long epoch, string what)
    {
        CheckGeneration(generation, what);
        NoteJoinEpoch(epoch);
        if (sequence <= _lastApplied)
            return false;
        if (sequence != _lastApplied + 1)
            throw new StreamBrokenException($"{what} frame has sequence {sequence}, but this secondary applied up to {_lastApplied}: resend from {_lastApplied + 1}");
        if (epoch > _floor)
            return true;
        _lastApplied = sequence;
        return false;
    }

    private void CheckGeneration(long generation, string what)
    {
        if (generation != _generation)
            throw new StreamBrokenException($"{what} of generation {generation} refused: this secondary is assigned to generation {_generation}");
    }

    private void CheckIncarnation()
    {
        var view = _gate.View;
        // A closed gate is a store restarting (or failed): what this applier applied may be undone
        // by its recovery, so nothing is counted until the new incarnation is there to compare with.
        if (!view.Open)
            throw new StoreClosedException();
        if (view.Incarnation != _incarnation)
        {
            Rewind(view);
            throw new StoreRewoundException(view);
        }
    }

    /// <summary>The store went back to checkpoint <c>view.Checkpoint</c>: so does the stream.</summary>
    private void Rewind(StoreView view)
    {
        // Resume right before the first frame of an epoch after the checkpoint: everything from
        // there on was undone (frames of epochs ≤ the checkpoint after it are skipped on resend).
        var undone = _epochs.Where(e => e.Key > view.Checkpoint).ToList();
        if (undone.Count > 0)
            _lastApplied = undone.Min(e => e.Value.FirstSequence) - 1;
        else if (view.Checkpoint < _floor || (view.Checkpoint > _floor && !_epochs.ContainsKey(view.Checkpoint)))
            _lastApplied = 0; // epochs this applier skipped or never saw were undone: resend from the start
        foreach (var (epoch, _) in undone)
            _epochs.Remove(epoch);
        Adopt(view);
    }

    private void Adopt(StoreView view)
    {
        _incarnation = view.Incarnation;
        _floor = view.Checkpoint;
    }

    private StreamBrokenException Broken(long epoch, string reason)
    {
        _secondary.Tell(new SecondaryStreamBroken(_generation, epoch, reason));
        return new StreamBrokenException(reason);
    }

    private EpochProgress Progress(long epoch, long sequence)
    {
        if (!_epochs.TryGetValue(epoch, out var progress))
            _epochs.Add(epoch, progress = new EpochProgress { FirstSequence = sequence });
        return progress;
    }

    private void NotifyIfComplete(long epoch, EpochProgress progress)
    {
        if (progress.MarkerSequence > 0 && progress.State && !progress.Notified)
        {
            progress.Notified = true;
            _secondary.Tell(new StreamCheckpointReceived(_generation, epoch, progress.Writes, progress.Bytes, _incarnation));
        }
    }

    private sealed class EpochProgress
    {
        public long FirstSequence;
        public long Writes;
        public long Bytes;
        public long MarkerSequence;
        public bool State;
        public bool Notified;
    }
}
