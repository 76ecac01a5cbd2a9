using McActors.Protocol;

namespace McActors.Node.LocalCluster;

/// <summary>
/// Asks the coordinator for its status and keeps a history of what it said: the primary of each
/// generation (invariant 4: one primary per generation), and the highest commit seen.
/// </summary>
public sealed class StatusTracker(ClusterObserver observer)
{
    private readonly Dictionary<long, HashSet<string>> _primaries = [];

    public CoordinatorStatus? Last { get; private set; }

    /// <summary>The highest LastCommitted any answer reported.</summary>
    public long MaxCommitted { get; private set; }

    /// <summary>Every primary each generation had, as reported (more than one in a generation breaks invariant 4).</summary>
    public IReadOnlyDictionary<long, HashSet<string>> PrimariesByGeneration => _primaries;

    /// <summary>The status, or null if the coordinator did not answer in time (it may be moving).</summary>
    public async Task<CoordinatorStatus?> PollAsync(TimeSpan timeout)
    {
        try
        {
            return Record(await observer.StatusAsync(timeout));
        }
        catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
        {
            return null;
        }
    }

    /// <summary>Polls every <paramref name="interval"/> until <paramref name="done"/> holds for an answer; null if not within <paramref name="timeout"/>.</summary>
    public async Task<CoordinatorStatus?> UntilAsync(Func<CoordinatorStatus, bool> done, TimeSpan timeout, TimeSpan interval, CancellationToken cancel)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await PollAsync(TimeSpan.FromSeconds(2)) is { } status && done(status))
                return status;
            await Task.Delay(interval, cancel);
        }
        return null;
    }

    public CoordinatorStatus Record(CoordinatorStatus status)
    {
        Last = status;
        MaxCommitted = Math.Max(MaxCommitted, status.LastCommitted);
        if (status.Primary is not null)
        {
            if (!_primaries.TryGetValue(status.Generation, out var set))
                _primaries[status.Generation] = set = [];
            set.Add(status.Primary);
        }
        return status;
    }
}
