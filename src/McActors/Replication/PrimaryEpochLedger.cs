namespace McActors.Replication;

/// <summary>How the primary must treat a fenced message, by its generation.</summary>
public enum FenceVerdict
{
    /// <summary>Of this primary's generation: act on it.</summary>
    Current,

    /// <summary>Older than this primary's generation: refuse it with StaleGeneration.</summary>
    Stale,

    /// <summary>Newer: this primary is the stale one; change nothing and let the coordinator fence it.</summary>
    Newer,
}

/// <summary>What a CloseEpoch asks for, relative to the epochs already closed.</summary>
public enum CloseRequest
{
    /// <summary>The next epoch: close it.</summary>
    Next,

    /// <summary>Already closed (a recovered coordinator re-drives): answer EpochClosed again.</summary>
    Repeat,

    /// <summary>Skips an epoch: refuse (log), closes must come in order.</summary>
    OutOfOrder,
}

/// <summary>What a Commit did to the ledger.</summary>
public enum CommitOutcome
{
    Advanced,
    AlreadyCommitted,
    NotClosedYet,
}

/// <summary>A closed epoch: its counts, where its marker went in the stream, and (once captured) its guest state.</summary>
public sealed record ClosedCheckpoint(long Epoch, long Writes, long Bytes, long MarkerSequence)
{
    /// <summary>The guest's state at this checkpoint; null until captured.</summary>
    public byte[]? State { get; set; }
}

/// <summary>
/// The primary's epoch bookkeeping as plain logic: the current epoch and its counts, the stream's
/// sequence numbers, closed checkpoints and their guest states, the last commit. Memory stays
/// bounded: only checkpoints from the last committed on are kept (the committed one's state is
/// what a stopped guest's demo writes out; older ones can never be asked for again).
/// </summary>
public sealed class PrimaryEpochLedger
{
    private readonly SortedDictionary<long, ClosedCheckpoint> _closed = [];

    public PrimaryEpochLedger(long generation, long lastCommitted)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        ArgumentOutOfRangeException.ThrowIfNegative(lastCommitted);
        Generation = generation;
        LastCommitted = lastCommitted;
        LastClosed = lastCommitted;
        Epoch = lastCommitted + 1;
    }

    public long Generation { get; }

    /// <summary>The epoch new writes belong to.</summary>
    public long Epoch { get; private set; }

    public long LastClosed { get; private set; }
    public long LastCommitted { get; private set; }
    public long WritesInEpoch { get; private set; }
    public long BytesInEpoch { get; private set; }
    public long TotalWrites { get; private set; }
    public long TotalBytes { get; private set; }

    /// <summary>The sequence the next frame of the stream carries (a new generation's stream starts at 1).</summary>
    public long NextSequence { get; private set; } = 1;

    /// <summary>Closed checkpoints still held (from the last committed on).</summary>
    public IReadOnlyCollection<long> HeldCheckpoints => _closed.Keys;

    public FenceVerdict Fence(long generation) =>
        generation == Generation ? FenceVerdict.Current : generation < Generation ? FenceVerdict.Stale : FenceVerdict.Newer;

    public CloseRequest Classify(long epoch) =>
        epoch <= LastClosed ? CloseRequest.Repeat : epoch == LastClosed + 1 ? CloseRequest.Next : CloseRequest.OutOfOrder;

    /// <summary>Counts one applied write of the current epoch; returns its sequence.</summary>
    public long RecordWrite(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        WritesInEpoch++;
        BytesInEpoch += length;
        TotalWrites++;
        TotalBytes += length;
        return NextSequence++;
    }

    /// <summary>
    /// Closes the current epoch once its last write was applied: returns it with the marker's
    /// sequence; later writes belong to the next epoch.
    /// </summary>
    public ClosedCheckpoint CloseEpoch()
    {
        var closed = new ClosedCheckpoint(Epoch, WritesInEpoch, BytesInEpoch, NextSequence++);
        _closed[Epoch] = closed;
        LastClosed = Epoch;
        Epoch++;
        WritesInEpoch = 0;
        BytesInEpoch = 0;
        return closed;
    }

    /// <summary>Takes the sequence of the guest-state frame of <paramref name="epoch"/> and keeps the state.</summary>
    public long AttachState(long epoch, byte[] state)
    {
        if (!_closed.TryGetValue(epoch, out var closed))
            throw new InvalidOperationException($"checkpoint {epoch} is not held (closed: {LastClosed}, committed: {LastCommitted})");
        if (closed.State is not null)
            throw new InvalidOperationException($"checkpoint {epoch} already has its guest state");
        closed.State = state;
        return NextSequence++;
    }

    /// <summary>A held checkpoint, or null once it was dropped after a later commit (or never closed).</summary>
    public ClosedCheckpoint? Find(long epoch) => _closed.GetValueOrDefault(epoch);

    public CommitOutcome Commit(long epoch)
    {
        if (epoch > LastClosed)
            return CommitOutcome.NotClosedYet;
        if (epoch <= LastCommitted)
            return CommitOutcome.AlreadyCommitted;
        LastCommitted = epoch;
        foreach (var old in _closed.Keys.Where(e => e < epoch).ToList())
            _closed.Remove(old);
        return CommitOutcome.Advanced;
    }
}
