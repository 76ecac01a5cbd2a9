using McActors.Checkpointing;
using McActors.Protocol;
using McActors.Node.LocalCluster;

namespace McActors.Node.Bench;

/// <summary>The coordinator's status for a bench, with a few tries: a busy coordinator may miss one timeout.</summary>
public static class BenchStatus
{
    private const int Attempts = 3;

    /// <param name="logs">Where the node logs are, for the failure message.</param>
    public static async Task<CoordinatorStatus> ReadAsync(ClusterObserver observer, string logs, TimeSpan timeout, CancellationToken cancel)
    {
        for (var attempt = 1; ; attempt++)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                return await observer.StatusAsync(timeout);
            }
            catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
            {
                if (attempt == Attempts)
                    throw new BenchFailedException($"the coordinator did not answer {Attempts} status requests in {timeout.TotalSeconds:0} s each; see the node.log files under {logs}");
            }
        }
    }
}
