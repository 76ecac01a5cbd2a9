using Akka.Actor;
using Akka.Event;
using McActors.Protocol;

namespace McActors.Replication;

/// <summary>
/// The secondary's side of the two-phase checkpoint (DESIGN.md, "Secondary"): Prepare(n) is
/// answered once marker and guest state n arrived and image, logs and state file n are durable;
/// Commit(n) commits what was prepared and drops older state files. The decisions are plain
/// (<see cref="SecondaryCheckpoints"/>, <see cref="StoreIncarnations"/>); this drives the store and
/// answers the coordinator. Owned by the SecondaryActor, called on its thread, for its current
/// generation only (the actor fences the others off first).
/// </summary>
internal sealed class SecondaryCheckpointing(string replicaId, GuestStateFiles states, IActorRef coordinator, ILoggingAdapter log, Action<string> fail)
{
    private readonly StoreIncarnations _incarnations = new();

    public SecondaryCheckpoints Checkpoints { get; } = new(0, 0);

    /// <summary>The store actor; set once it is started.</summary>
    public IActorRef Store { get; set; } = ActorRefs.Nobody;

    /// <summary>A new generation began: requests and held checkpoints of the old one are not this one's.</summary>
    public void NewGeneration()
    {
        Checkpoints.ClearWaiting();
        _incarnations.ClearHeld();
    }

    public void Prepare(long generation, long epoch)
    {
        if (Checkpoints.Request(epoch))
            coordinator.Tell(new Prepared(generation, epoch, replicaId));
        else
            log.Debug("prepare of checkpoint {0} waits for its marker and state (received up to {1})", epoch, Checkpoints.Received);
        StartPrepare();
    }

    public void CheckpointReceived(StreamCheckpointReceived m)
    {
        switch (_incarnations.Received(m))
        {
            case StreamCheckpointVerdict.Hold:
                log.Debug("holding checkpoint {0} received in store incarnation {1} until its StoreReady: the store is incarnation {2}",
                    m.Epoch, m.Incarnation, _incarnations.Current);
                return;
            case StreamCheckpointVerdict.Ignore:
                log.Debug("ignoring checkpoint {0} received in store incarnation {1}: the store is incarnation {2}", m.Epoch, m.Incarnation, _incarnations.Current);
                return;
        }
        Checkpoints.CheckpointReceived(m.Epoch);
        StartPrepare();
    }

    public void StorePrepared(long generation, StorePrepared m)
    {
        if (m.Incarnation != _incarnations.Current)
        {
            // Prepared before a rollback or reopen that undid it: it vouches for nothing now.
            log.Debug("ignoring StorePrepared({0}) of store incarnation {1}: the store is incarnation {2}", m.Epoch, m.Incarnation, _incarnations.Current);
            return;
        }
        foreach (var epoch in Checkpoints.StorePrepared(m.Epoch))
            coordinator.Tell(new Prepared(generation, epoch, replicaId));
        StartPrepare();
    }

    public void Commit(long epoch)
    {
        switch (Checkpoints.Commit(epoch))
        {
            case CommitDecision.Apply:
                Store.Tell(new CommitStore(epoch));
                break;
            case CommitDecision.AlreadyCommitted:
                log.Debug("ignoring Commit({0}): checkpoint {1} is committed here", epoch, Checkpoints.Committed);
                break;
            case CommitDecision.NotPrepared:
                log.Warning("ignoring Commit({0}): only checkpoints up to {1} are prepared here", epoch, Checkpoints.Prepared);
                break;
        }
    }

    /// <summary>The store committed <paramref name="epoch"/>: the state files before it are not needed anymore.</summary>
    public void StoreCommitted(long epoch)
    {
        Checkpoints.StoreCommitted(epoch);
        // The committed state stays: it is what a promotion restores.
        try
        {
            states.DeleteBefore(Checkpoints.Committed);
        }
        catch (IOException e)
        {
            log.Warning("cannot delete guest states older than checkpoint {0} (retried at the next commit): {1}", Checkpoints.Committed, e.Message);
        }
    }

    /// <summary>The store (re)opened or rolled back: its image is its prepared checkpoint.</summary>
    public void StoreReady(StoreReady m, long generation)
    {
        Checkpoints.Reset(m.Committed, m.Prepared);
        // A checkpoint received in this very store before its StoreReady counts as if it came after it.
        if (_incarnations.Ready(m.Incarnation, generation) is { } held)
            Checkpoints.CheckpointReceived(held);
    }

    /// <summary>
    /// Starts the store prepare of the newest requested and received checkpoint, with the state
    /// files of the checkpoints it covers: the store records a checkpoint prepared only once its
    /// state is on disk too.
    /// </summary>
    public void StartPrepare()
    {
        if (Checkpoints.NextPrepare() is not { } epoch)
            return;
        var from = Checkpoints.Prepared;
        IReadOnlyList<long> epochs;
        try
        {
            epochs = [.. states.Epochs().Where(e => e > from && e <= epoch)];
        }
        catch (IOException e)
        {
            fail($"guest states of checkpoint {epoch} cannot be listed, resync required: {e.Message}");
            return;
        }
        Store.Tell(new PrepareStore(epoch, _incarnations.Current, new GuestStatesToSync(states, epochs)));
    }

    /// <summary>The store could not make a prepare's guest states durable: without them the checkpoint cannot be vouched for.</summary>
    public void StatesNotDurable(StoreStatesNotDurable m)
    {
        if (m.Incarnation != _incarnations.Current)
        {
            // A rollback or reopen since may have deleted those very files (they were undone).
            log.Debug("ignoring StoreStatesNotDurable({0}) of store incarnation {1}: the store is incarnation {2} now", m.Epoch, m.Incarnation, _incarnations.Current);
            return;
        }
        fail($"{m.Reason}; resync required");
    }
}
