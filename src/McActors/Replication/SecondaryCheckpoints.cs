namespace McActors.Replication;

/// <summary>What to do with a Commit.</summary>
public enum CommitDecision
{
    /// <summary>Commit it in the store.</summary>
    Apply,

    /// <summary>Already committed here: a late or repeated Commit changes nothing.</summary>
    AlreadyCommitted,

    /// <summary>Never prepared here: this replica did not vote for it, so it must not commit it.</summary>
    NotPrepared,
}

/// <summary>
/// The secondary's checkpoint bookkeeping, without I/O: which checkpoints the stream delivered
/// (marker + state), which are durable, which are being made durable, which Prepare requests
/// wait. A Prepare may outrun the stream; then it waits for the checkpoint. One store prepare is
/// in flight at a time, for the newest checkpoint that is both requested and received (a prepare
/// of n makes every checkpoint ≤ n durable), and every request ≤ the prepared one is answered.
/// </summary>
public sealed class SecondaryCheckpoints
{
    private readonly List<long> _waiting = [];

    public SecondaryCheckpoints(long committed, long prepared) => Reset(committed, prepared);

    /// <summary>Newest checkpoint whose marker and guest state arrived (or that is prepared).</summary>
    public long Received { get; private set; }

    /// <summary>Newest checkpoint durable in the store and its state file.</summary>
    public long Prepared { get; private set; }

    /// <summary>Checkpoint of the store prepare in flight, or null.</summary>
    public long? Preparing { get; private set; }

    public long Committed { get; private set; }

    /// <summary>Prepare requests not answered yet, in arrival order.</summary>
    public IReadOnlyList<long> Waiting => _waiting;

    /// <summary>
    /// The store was reopened or rolled back: its image is checkpoint <paramref name="prepared"/>,
    /// whatever the stream had delivered after it is gone (it will be resent). Waiting requests stay.
    /// </summary>
    public void Reset(long committed, long prepared)
    {
        Committed = committed;
        Prepared = Received = prepared;
        Preparing = null;
    }

    /// <summary>A new generation began: Prepare requests of the old one are not owed anymore.</summary>
    public void ClearWaiting() => _waiting.Clear();

    /// <summary>A Prepare(<paramref name="epoch"/>) arrived: true to answer it now (already durable); else it waits.</summary>
    public bool Request(long epoch)
    {
        if (epoch <= Prepared)
            return true;
        _waiting.Add(epoch);
        return false;
    }

    /// <summary>The stream delivered checkpoint <paramref name="epoch"/>.</summary>
    public void CheckpointReceived(long epoch) => Received = Math.Max(Received, epoch);

    /// <summary>The checkpoint to prepare now, if one is wanted, received, and no prepare is in flight; marks it in flight.</summary>
    public long? NextPrepare()
    {
        if (Preparing is not null)
            return null;
        var target = _waiting.Where(e => e <= Received).DefaultIfEmpty(0).Max();
        if (target <= Prepared)
            return null;
        Preparing = target;
        return target;
    }

    /// <summary>The store made <paramref name="epoch"/> durable: the requests to answer now, in arrival order.</summary>
    public IReadOnlyList<long> StorePrepared(long epoch)
    {
        if (Preparing == epoch)
            Preparing = null;
        Prepared = Math.Max(Prepared, epoch);
        Received = Math.Max(Received, Prepared);
        var answered = _waiting.Where(e => e <= Prepared).ToList();
        _waiting.RemoveAll(e => e <= Prepared);
        return answered;
    }

    public CommitDecision Commit(long epoch)
    {
        if (epoch <= Committed)
            return CommitDecision.AlreadyCommitted;
        if (epoch > Prepared)
            return CommitDecision.NotPrepared;
        return CommitDecision.Apply;
    }

    /// <summary>The store committed <paramref name="epoch"/>.</summary>
    public void StoreCommitted(long epoch) => Committed = Math.Max(Committed, epoch);
}
