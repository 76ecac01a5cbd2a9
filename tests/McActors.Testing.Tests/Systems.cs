using Akka.Actor;
using Akka.Configuration;
using McActors.Configuration;

namespace McActors.Testing.Tests;

/// <summary>Configurations for the ActorSystems of these tests: the product's hocon/, on loopback, any port.</summary>
internal static class Systems
{
    /// <summary>The node configuration (cluster, SBR, Hyperion) with the throttle adapter, as a node with fault injection on runs.</summary>
    public static Config ClusterNode(params string[] overrides) =>
        // The voter role makes it count for the Split Brain Resolver, as replicas (and most arbiters) do.
        FaultConfig.ThrottleAdapter.WithFallback(HoconFiles.Load(["akka.loglevel = INFO", "akka.cluster.roles = [coordinator, voter]", .. overrides]));

    /// <summary>Plain remoting (no cluster, so no downing) with the throttle adapter and the product's serialization.</summary>
    public static Config Remote(params string[] overrides) =>
        ClusterNode(["akka.actor.provider = remote", .. overrides]);

    public static Address AddressOf(ActorSystem system) => ((ExtendedActorSystem)system).Provider.DefaultAddress;
}

/// <summary>Answers every message to its sender, and tells a watcher it got it.</summary>
internal sealed class EchoActor : ReceiveActor
{
    public EchoActor(IActorRef watcher) =>
        ReceiveAny(m =>
        {
            watcher.Tell(m);
            Sender.Tell(m);
        });
}
