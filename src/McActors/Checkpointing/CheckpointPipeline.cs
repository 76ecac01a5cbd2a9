using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>What the coordinator must do next, as decided by the <see cref="CheckpointPipeline"/>.</summary>
public abstract record PipelineDecision;

/// <summary>
/// Persist Committed(epoch), then send Commit(epoch) to every replica. <see cref="PreparedBy"/> is
/// exactly the secondaries that prepared it: its count is what the Commit says (min-replicas).
/// </summary>
public sealed record CommitCheckpoint(long Epoch, IReadOnlyCollection<string> PreparedBy) : PipelineDecision;

/// <summary>Persist that the replica left the replica set (too slow to prepare), then stop waiting for it.</summary>
public sealed record DropSecondary(string Replica, long Epoch, string Reason) : PipelineDecision;

/// <summary>
/// The coordinator's two-phase-commit bookkeeping as plain logic, so that every decision is unit
/// tested without actors. Checkpoints are closed in order, at most <c>maxInFlight</c> at once, and
/// commit in order: checkpoint n commits when the primary has closed it and every secondary in the
/// replica set that takes part in n has answered Prepared(m) for some m ≥ n (a Prepare makes
/// everything so far durable). A secondary takes part in every checkpoint from the one it counts
/// from: the generation's first for a secondary it started with, the first one opened after it
/// joined for one that joined by a resync (it never got Prepare for those already open, so it
/// neither holds them up nor counts for them). A secondary that has not prepared the oldest
/// checkpoint by its deadline is dropped, and the checkpoint commits with those left. Messages of
/// another generation change nothing.
/// </summary>
public sealed class CheckpointPipeline
{
    private readonly SortedDictionary<long, OpenCheckpoint> _inFlight = [];
    private readonly HashSet<string> _secondaries;
    private readonly Dictionary<string, long> _preparedUpTo = [];
    // The first checkpoint each joined secondary takes part in; absent: every one of the generation.
    private readonly Dictionary<string, long> _countsFrom = [];
    private readonly int _maxInFlight;
    private readonly TimeSpan _prepareTimeout;

    /// <param name="joined">Secondaries that joined this generation by a resync, and the first checkpoint each takes part in (from the journal).</param>
    public CheckpointPipeline(long generation, long lastCommitted, IEnumerable<string> secondaries, int maxInFlight, TimeSpan prepareTimeout,
        IEnumerable<SecondaryJoin>? joined = null)
    {
        if (maxInFlight < 1)
            throw new ArgumentOutOfRangeException(nameof(maxInFlight), maxInFlight, "at least one checkpoint must be allowed in flight");
        Generation = generation;
        LastCommitted = lastCommitted;
        LastClosed = lastCommitted;
        _secondaries = [.. secondaries];
        _maxInFlight = maxInFlight;
        _prepareTimeout = prepareTimeout;
        foreach (var join in joined ?? [])
            if (_secondaries.Contains(join.Replica))
                _countsFrom[join.Replica] = join.CountsFrom;
    }

    private CheckpointPipeline(CheckpointPipeline other)
    {
        Generation = other.Generation;
        LastCommitted = other.LastCommitted;
        LastClosed = other.LastClosed;
        _secondaries = [.. other._secondaries];
        _preparedUpTo = new Dictionary<string, long>(other._preparedUpTo);
        _countsFrom = new Dictionary<string, long>(other._countsFrom);
        _maxInFlight = other._maxInFlight;
        _prepareTimeout = other._prepareTimeout;
        foreach (var (epoch, checkpoint) in other._inFlight)
            _inFlight.Add(epoch, new OpenCheckpoint(checkpoint.Deadline) { ClosedByPrimary = checkpoint.ClosedByPrimary });
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
        _inFlight.ContainsKey(epoch) ? [.. _secondaries.Where(s => TakesPart(s, epoch) && PreparedUpTo(s) < epoch)] : [];

    /// <summary>The secondaries that take part in checkpoint <paramref name="epoch"/>: those to send Prepare(epoch) to.</summary>
    public IReadOnlyCollection<string> TakingPart(long epoch) => [.. _secondaries.Where(s => TakesPart(s, epoch))];

    /// <summary>
    /// The first checkpoint a replica in sync from <paramref name="fromEpoch"/> (ResyncCompleted)
    /// takes part in if it joins now: the first one opened from now on, since only those get a
    /// Prepare to it, and never one before its image is the primary's.
    /// </summary>
    public long JoinEpoch(long fromEpoch) => Math.Max(LastClosed + 1, fromEpoch);

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
            _countsFrom.Remove(slow);
            decisions.Add(new DropSecondary(slow, oldest, $"no Prepared({oldest}) within {_prepareTimeout.TotalMilliseconds:0} ms"));
        }
        decisions.AddRange(CommitReady());
        return decisions;
    }

    /// <summary>
    /// A secondary joins the replica set (a resync finished); it must prepare every checkpoint from
    /// <paramref name="countsFrom"/> on (<see cref="JoinEpoch"/>) and counts for no earlier one.
    /// </summary>
    public void AddSecondary(string replica, long countsFrom)
    {
        _secondaries.Add(replica);
        _preparedUpTo.Remove(replica); // it has prepared nothing of this generation yet
        _countsFrom[replica] = countsFrom;
    }

    /// <summary>A secondary left (terminated or downed): stop waiting for it.</summary>
    public IReadOnlyList<PipelineDecision> RemoveSecondary(string replica)
    {
        _secondaries.Remove(replica);
        _preparedUpTo.Remove(replica);
        _countsFrom.Remove(replica);
        return CommitReady();
    }

    /// <summary>A deep copy (the interleaving explorer branches on it).</summary>
    public CheckpointPipeline Clone() => new(this);

    /// <summary>The whole state, deterministic (the explorer dedupes states by it).</summary>
    public override string ToString() =>
        $"g{Generation} c{LastCommitted} l{LastClosed} [{string.Join(",", _inFlight.Select(kv => $"{kv.Key}{(kv.Value.ClosedByPrimary ? "+" : "-")}{kv.Value.Deadline.Ticks}"))}] " +
        $"{{{string.Join(",", _secondaries.Order(StringComparer.Ordinal).Select(s => $"{s}:{PreparedUpTo(s)}/{_countsFrom.GetValueOrDefault(s)}"))}}}";

    private bool TakesPart(string replica, long epoch) => _countsFrom.GetValueOrDefault(replica) <= epoch;

    private long PreparedUpTo(string replica) => _preparedUpTo.GetValueOrDefault(replica, LastCommitted);

    private List<PipelineDecision> CommitReady()
    {
        var decisions = new List<PipelineDecision>();
        while (_inFlight.Count > 0)
        {
            var (oldest, checkpoint) = _inFlight.First();
            if (!checkpoint.ClosedByPrimary || AwaitingPrepare(oldest).Count > 0)
                break;
            var preparedBy = TakingPart(oldest);
            _inFlight.Remove(oldest);
            LastCommitted = oldest;
            decisions.Add(new CommitCheckpoint(oldest, preparedBy));
        }
        return decisions;
    }

    private sealed class OpenCheckpoint(DateTime deadline)
    {
        public DateTime Deadline { get; } = deadline;
        public bool ClosedByPrimary { get; set; }
    }
}
