namespace McActors.Replication;

/// <summary>
/// External output (a FLUSH reply to an NBD client, any answer that promises durability) held
/// back until the checkpoint covering it commits (DESIGN.md invariant 3). Plain logic: the
/// primary calls <see cref="Commit"/> on every Commit it accepts. Bounded by the caller: the
/// front-end holds at most its own queue depth of outputs.
/// </summary>
public sealed class PrimaryOutputGate
{
    private readonly PriorityQueue<Action, (long Epoch, long Order)> _held = new();
    private long _order;

    public PrimaryOutputGate(long committed) => Committed = committed;

    public long Committed { get; private set; }

    public int Pending => _held.Count;

    /// <summary>The newest checkpoint some held output waits for; 0 when none waits.</summary>
    public long NewestHeld { get; private set; }

    /// <summary>Runs <paramref name="release"/> once checkpoint <paramref name="epoch"/> has committed (at once if it has).</summary>
    public void HoldUntilCommitted(long epoch, Action release)
    {
        if (epoch <= Committed)
        {
            release();
            return;
        }
        _held.Enqueue(release, (epoch, _order++));
        NewestHeld = Math.Max(NewestHeld, epoch);
    }

    /// <summary>Checkpoint <paramref name="epoch"/> committed: releases what it covers, oldest checkpoint first, in arrival order.</summary>
    public int Commit(long epoch)
    {
        if (epoch <= Committed)
            return 0;
        Committed = epoch;
        var released = 0;
        while (_held.TryPeek(out var release, out var key) && key.Epoch <= epoch)
        {
            _held.Dequeue();
            released++;
            release();
        }
        if (_held.Count == 0)
            NewestHeld = 0;
        return released;
    }
}
