using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Pattern;
using McActors.Configuration;
using McActors.Events;

namespace McActors.Checkpointing;

/// <summary>
/// Runs the <see cref="EpochCoordinator"/> as a cluster singleton on the oldest node with role
/// <see cref="Role"/>: a manager <c>/user/coordinator</c> on such nodes, and on every node a
/// proxy <c>/user/coordinator-proxy</c> that follows the singleton when it moves (and buffers
/// while it moves).
/// </summary>
public static class CoordinatorSingleton
{
    public const string Role = "coordinator";
    public const string ManagerName = "coordinator";
    public const string ProxyName = "coordinator-proxy";

    /// <summary>Starts the manager (if this node has role "coordinator") and the proxy; returns the proxy.</summary>
    public static IActorRef Start(ActorSystem system, McActorsSettings settings)
    {
        // A manager on a node without the role would never host the singleton; Akka refuses it.
        if (Cluster.Get(system).SelfRoles.Contains(Role))
        {
            system.ActorOf(
                ClusterSingletonManager.Props(
                    SupervisedProps(settings),
                    terminationMessage: HandOver.Instance,
                    settings: ClusterSingletonManagerSettings.Create(system).WithRole(Role)),
                ManagerName);
        }
        return StartProxy(system);
    }

    /// <summary>The child's name under the restart supervisor (the singleton is /user/coordinator/singleton/coordinator).</summary>
    public const string CoordinatorName = "coordinator";

    /// <summary>
    /// The coordinator under a backoff supervisor (mcactors.coordinator.restart-backoff): a
    /// persistent actor stops when a journal write fails, and a singleton that stopped would leave
    /// the cluster with no coordinator until the node left. Started again, it recovers from the
    /// journal. HandOver is final: the coordinator stops on it and the supervisor with it, so that
    /// the singleton can move.
    /// </summary>
    public static Props SupervisedProps(McActorsSettings settings, string persistenceId = EpochCoordinator.DefaultPersistenceId) =>
        BackoffSupervisor.Props(
            Backoff.OnStop(EpochCoordinator.Props(settings, persistenceId), CoordinatorName,
                    settings.CoordinatorRestartMin, settings.CoordinatorRestartMax, settings.CoordinatorRestartRandomFactor,
                    maxNrOfRetries: -1) // never give up: a cluster without its coordinator only waits
                .WithFinalStopMessage(m => m is HandOver));

    /// <summary>
    /// Only the proxy, for nodes that talk to the coordinator but never host it; every node starts
    /// one, so the node's <see cref="EventRelay"/> (the coordinator's events on its EventStream) starts beside it.
    /// </summary>
    public static IActorRef StartProxy(ActorSystem system)
    {
        system.ActorOf(EventRelay.Props(McActorsSettings.From(system.Settings.Config).RelayCheckpointEvents), EventRelay.Name);
        return system.ActorOf(
            ClusterSingletonProxy.Props($"/user/{ManagerName}", ClusterSingletonProxySettings.Create(system).WithRole(Role)),
            ProxyName);
    }

    /// <summary>
    /// The manager's termination message when the singleton moves: a plain message (not a
    /// PoisonPill) so that it is handled after the persists already under way.
    /// </summary>
    public sealed record HandOver
    {
        public static readonly HandOver Instance = new();
    }
}
