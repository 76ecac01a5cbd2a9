using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Protocol;
using Xunit.Abstractions;

namespace McActors.Tests.Checkpointing;

/// <summary>The coordinator as a cluster singleton on a one-node cluster, reached through its proxy.</summary>
public sealed class CoordinatorSingletonTests(ITestOutputHelper output) : TestKit(Config, output: output)
{
    private const string Config = $$"""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = [coordinator]
        akka.cluster.singleton-proxy.singleton-identification-interval = 200ms
        akka.coordinated-shutdown.exit-clr = off
        {{ReplicaProbes.InMemoryPersistence}}
        """;

    [Fact]
    public async Task The_proxy_reaches_the_singleton()
    {
        Cluster.Get(Sys).Join(Cluster.Get(Sys).SelfAddress);

        var proxy = CoordinatorSingleton.Start(Sys, ReplicaProbes.Settings());

        Assert.Equal("/user/coordinator-proxy", proxy.Path.ToStringWithoutAddress());
        proxy.Tell(GetCoordinatorStatus.Instance);
        var status = ExpectMsg<CoordinatorStatus>(TimeSpan.FromSeconds(10));
        Assert.Equal(0, status.Generation);
        Assert.Null(status.Primary);
        Assert.NotNull(await Sys.ActorSelection("/user/coordinator").ResolveOne(TimeSpan.FromSeconds(1)));
    }
}
