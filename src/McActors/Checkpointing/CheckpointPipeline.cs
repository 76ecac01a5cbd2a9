using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>What the coordinator must do next, as decided by the <see cref="CheckpointPipeline"/>.</summary>
public abstract record PipelineDecision;

/// <summary>Persist Committed(epoch), then send Commit(epoch) to every replica.</summary>
public sealed record CommitCheckpoint(long Epoch, IReadOnlyCollection<string> PreparedBy) : PipelineDecision;

/// <summary>Persist that the replica left the replica set (too slow to prepare), then stop waiting for it.</summary>
public sealed record DropSecondary(string Replica, long Epoch, string Reason) : PipelineDecision;

/// <summary>
/// The coordinator's two-phase-commit bookkeeping as plain logic, so that every decision is unit
/// tested without actors. Checkpoints are closed in order, at most <c>maxInFlight</c> at once, and
/// commit in order: checkpoint n commits when the primary has closed it and every secondary in the
/// replica set has answered Prepared(m) for some m ≥ n (a Prepare makes everything so far durable).
/// A secondary that has not prepared the oldest checkpoint by its deadline is dropped, and the
/// checkpoint commits with those left. Messages of another generation change nothing.
/// </summary>
public sealed class CheckpointPipeline
{
    private readonly SortedDictionary<long, OpenCheckpoint> _inFlight = [];
    private readonly HashSet<string> _secondaries;
    private readonly Dictionary<string, long> _preparedUpTo = [];
    private readonly int _maxInFlight;
    private readonly TimeSpan _prepareTimeout;

    public CheckpointPipeline(long generation, long lastCommitted, IEnumerable<string> secondaries, int maxInFlight, TimeSpan prepareTimeout)
    {
        if (maxInFlight < 1)
            throw new ArgumentOutOfRangeException(nameof(maxInFlight), maxInFlight, "at least one checkpoint must be allowed in flight");
        Generation = generation;
        LastCommitted = lastCommitted;
        LastClosed = lastCommitted;
        _secondaries = [.. secondaries];
        _maxInFlight = maxInFlight;
        _prepareTimeout = prepareTimeout;
    }

    public long Generation { get; }
    public long LastCommitted { get; private set; }
    public long LastClosed { get; private set; }
    public IReadOnlyCollection<string> Secondaries => _secondaries;
    public int InFlight => _inFlight.Count;

    /// <summary>False while the pipeline is full: the guest waits (back-pressure) until a commit frees a slot.</summary>
    public bool CanClose => _inFlight.Count < _maxInFlight;

    /// <summary>Opens checkpoint LastClosed+1; the caller sends CloseEpoch to the primary and Prepare to the secondaries.</summary>
    public long Close(DateTime now)
    {
        if (!CanClose)
            throw new InvalidOperationException($"{_inFlight.Count} checkpoints are in flight, the most allowed");
        var epoch = ++LastClosed;
        _inFlight.Add(epoch, new OpenCheckpoint(now + _prepareTimeout));
        return epoch;
    }

    /// <summary>True once the primary said it closed <paramref name="epoch"/> (false for one not in flight).</summary>
    public bool IsClosedByPrimary(long epoch) => _inFlight.TryGetValue(epoch, out var checkpoint) && checkpoint.ClosedByPrimary;

    /// <summary>Secondaries that still owe Prepared for <paramref name="epoch"/>.</summary>
    public IReadOnlyCollection<string> AwaitingPrepare(long epoch) =>
        _inFlight.ContainsKey(epoch) ? [.. _secondaries.Where(s => PreparedUpTo(s) < epoch)] : [];

    public IReadOnlyList<PipelineDecision> OnEpochClosed(EpochClosed closed)
    {
        if (closed.Generation != Generation || !_inFlight.TryGetValue(closed.Epoch, out var checkpoint))
            return [];
        checkpoint.ClosedByPrimary = true;
        return CommitReady();
    }

    public IReadOnlyList<PipelineDecision> OnPrepared(Prepared prepared)
    {
        if (prepared.Generation != Generation || !_secondaries.Contains(prepared.Replica))
            return [];
        if (prepared.Epoch > PreparedUpTo(prepared.Replica))
            _preparedUpTo[prepared.Replica] = Math.Min(prepared.Epoch, LastClosed);
        return CommitReady();
    }

    /// <summary>Drops the secondaries that missed the oldest checkpoint's deadline, then commits what can be.</summary>
    public IReadOnlyList<PipelineDecision> OnTick(DateTime now)
    {
        if (_inFlight.Count == 0)
            return [];
        var (oldest, checkpoint) = _inFlight.First();
        if (now < checkpoint.Deadline || !checkpoint.ClosedByPrimary)
            return [];
        var decisions = new List<PipelineDecision>();
        foreach (var slow in AwaitingPrepare(oldest).ToList())
        {
            _secondaries.Remove(slow);
            _preparedUpTo.Remove(slow);
            decisions.Add(new DropSecondary(slow, oldest, $"no Prepared({oldest}) within {_prepareTimeout.TotalMilliseconds:0} ms"));
        }
        decisions.AddRange(CommitReady());
        return decisions;
    }

    /// <summary>A secondary joins the replica set; it must prepare every checkpoint opened from now on.</summary>
    public void AddSecondary(string replica, long preparedUpTo)
    {
        _secondaries.Add(replica);
        _preparedUpTo[replica] = Math.Max(preparedUpTo, LastClosed);
    }

    /// <summary>A secondary left (terminated or downed): stop waiting for it.</summary>
    public IReadOnlyList<PipelineDecision> RemoveSecondary(string replica)
    {
        _secondaries.Remove(replica);
        _preparedUpTo.Remove(replica);
        return CommitReady();
    }

    private long PreparedUpTo(string replica) => _preparedUpTo.GetValueOrDefault(replica, LastCommitted);

    private List<PipelineDecision> CommitReady()
    {
        var decisions = new List<PipelineDecision>();
        while (_inFlight.Count > 0)
        {
            var (oldest, checkpoint) = _inFlight.First();
            if (!checkpoint.ClosedByPrimary || _secondaries.Any(s => PreparedUpTo(s) < oldest))
                break;
            _inFlight.Remove(oldest);
            LastCommitted = oldest;
            decisions.Add(new CommitCheckpoint(oldest, [.. _secondaries]));
        }
        return decisions;
    }

    private sealed class OpenCheckpoint(DateTime deadline)
    {
        public DateTime Deadline { get; } = deadline;
        public bool ClosedByPrimary { get; set; }
    }
}
