using Akka.Actor;
using McActors.Checkpointing;
using McActors.Hosting;
using McActors.Node.Hosting;
using McActors.Protocol;
using McActors.Testing;

namespace McActors.Node.LocalCluster;

/// <summary>
/// The CLI's own membership in a cluster (role "observer": never hosts the coordinator), used to
/// ask the coordinator for status and to stop the guest. It leaves the cluster when disposed.
/// </summary>
public sealed class ClusterObserver : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly IActorRef _coordinator;

    private ClusterObserver(ActorSystem system, IActorRef coordinator)
    {
        _system = system;
        _coordinator = coordinator;
        system.ActorOf(MembershipLog.Watcher.Props(Membership), "membership-log");
    }

    /// <summary>When the observer saw each node become unreachable, downed, removed.</summary>
    public MembershipLog Membership { get; } = new();

    /// <summary>The actor system the observer is a member with (to reach nodes' actors).</summary>
    public ActorSystem System => _system;

    /// <summary>Joins through <paramref name="seeds"/>, bound to <paramref name="host"/> (the bridge's address when the nodes run in namespaces).</summary>
    public static ClusterObserver Join(IReadOnlyList<string> seeds, string dataDirectory, IReadOnlyList<string> overrides, string host = "127.0.0.1")
    {
        var port = FreePorts.Take(1)[0];
        var options = new NodeOptions(NodeKind.Observer, "observer", host, port, seeds, dataDirectory,
            Path.Combine(dataDirectory, "coordinator.db"), 0,
            // Off: the observer's own remoting errors (a node it watched was killed) are expected noise on the console.
            // Terminate without a leave (AbandonAsync) must not wait for the cluster: a leave is asked for
            // explicitly by DisposeAsync.
            [.. overrides, "akka.loglevel = OFF", "akka.stdout-loglevel = OFF", "akka.log-dead-letters = off",
                "akka.coordinated-shutdown.run-by-actor-system-terminate = off"]);
        // With fault injection on, the nodes talk through the throttle adapter (another address
        // protocol): the observer must too, or it cannot reach them.
        var system = ActorSystem.Create(NodeOptions.SystemName, FaultConfig.ForNode(NodeConfig.Build(options)));
        return new ClusterObserver(system, CoordinatorSingleton.StartProxy(system));
    }

    public Task<CoordinatorStatus> StatusAsync(TimeSpan timeout) =>
        _coordinator.Ask<CoordinatorStatus>(GetCoordinatorStatus.Instance, timeout);

    /// <summary>Starts the coordinator's commit-latency window afresh.</summary>
    public void ResetCommitLatency() => _coordinator.Tell(Protocol.ResetCommitLatency.Instance);

    public Task<GuestStopped> StopGuestAsync(TimeSpan timeout) =>
        _coordinator.Ask<GuestStopped>(StopGuest.Instance, timeout);

    /// <summary>Stops the observer without leaving the cluster (for when the nodes are gone anyway).</summary>
    public Task AbandonAsync() => _system.Terminate();

    public async ValueTask DisposeAsync()
    {
        if (_system.WhenTerminated.IsCompleted)
            return;
        await CoordinatedShutdown.Get(_system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        await _system.WhenTerminated;
    }
}
