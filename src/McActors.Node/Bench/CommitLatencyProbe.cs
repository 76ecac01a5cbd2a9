using McActors.Checkpointing;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Bench;

/// <summary>
/// The coordinator's checkpoint commit latency over one bench window: <see cref="Start"/> empties its
/// latency window (so start-up and earlier phases are not counted), <see cref="ReadAsync"/> takes the
/// percentiles at the window's end. The window holds the last <see cref="LatencyWindow.DefaultCapacity"/> commits.
/// </summary>
public sealed class CommitLatencyProbe
{
    private readonly ClusterObserver _observer;
    private readonly string _logs;

    private CommitLatencyProbe(ClusterObserver observer, string logs)
    {
        _observer = observer;
        _logs = logs;
    }

    /// <summary>Resets the coordinator's latency window now; <paramref name="logs"/> says where the node logs are, for the failure message.</summary>
    public static CommitLatencyProbe Start(ClusterObserver observer, string logs)
    {
        observer.ResetCommitLatency();
        return new CommitLatencyProbe(observer, logs);
    }

    /// <summary>The coordinator's status at the window's end.</summary>
    public async Task<CommitLatencyReading> ReadAsync(TimeSpan timeout, CancellationToken cancel) =>
        new(await BenchStatus.ReadAsync(_observer, _logs, timeout, cancel));
}

/// <summary>The commit latency percentiles of one window, and the status they came with.</summary>
public sealed record CommitLatencyReading(CoordinatorStatus Status)
{
    public double P50Us => 1000 * Status.CommitP50Ms;
    public double P99Us => 1000 * Status.CommitP99Ms;
}
