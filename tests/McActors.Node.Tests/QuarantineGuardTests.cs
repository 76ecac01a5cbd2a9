using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;
using Akka.TestKit.Xunit2;
using McActors.Hosting;
using McActors.Node.Hosting;
using Xunit.Abstractions;

namespace McActors.Node.Tests;

/// <summary>
/// A node a peer has quarantined (the cluster removed it while it was paused or cut off) downs
/// itself: Akka.Cluster on its own goes on with its stale view until it hears it was downed.
/// </summary>
public sealed class QuarantineGuardTests(ITestOutputHelper output) : TestKit(Config, output: output)
{
    // A one-node cluster on loopback; the downed node is only marked Down (the test watches its status, not an exit).
    private const string Config = """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
        akka.cluster.run-coordinated-shutdown-when-down = off
        akka.loglevel = INFO
        """;

    [Fact]
    public void A_node_that_a_peer_quarantined_downs_itself()
    {
        var cluster = Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitAssert(() => Assert.Equal(MemberStatus.Up, cluster.SelfMember.Status), TimeSpan.FromSeconds(10));
        var guard = Sys.ActorOf(QuarantineGuard.Props(), "quarantine-guard");
        guard.Tell(new Identify(1), TestActor); // answered after its PreStart: subscribed
        ExpectMsg<ActorIdentity>();

        // Not a member: no judge of membership.
        var stranger = new Address("akka.tcp", Sys.Name, "127.0.0.1", 1);
        EventFilter.Warning(contains: "not a member, quarantined this node; ignored").ExpectOne(() =>
            Sys.EventStream.Publish(new ThisActorSystemQuarantinedEvent(cluster.SelfAddress, stranger)));
        Assert.Equal(MemberStatus.Up, cluster.SelfMember.Status);

        // A member (here the node itself, the one member there is) that quarantined it: the cluster removed it.
        EventFilter.Error(contains: "quarantined this node").ExpectOne(() =>
            Sys.EventStream.Publish(new ThisActorSystemQuarantinedEvent(cluster.SelfAddress, cluster.SelfAddress)));
        AwaitAssert(() => Assert.True(cluster.SelfMember.Status is MemberStatus.Down or MemberStatus.Removed, $"self is {cluster.SelfMember.Status}"),
            TimeSpan.FromSeconds(5));
    }
}
