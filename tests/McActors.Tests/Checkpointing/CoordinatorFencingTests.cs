using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Protocol;
using Xunit.Abstractions;
using static McActors.Tests.Checkpointing.ReplicaProbes;

namespace McActors.Tests.Checkpointing;

/// <summary>
/// A coordinator whose own node is downed decides nothing more, on a one-node cluster (the probes
/// standing in for replicas are local, so the primary's node is the coordinator's: the minority
/// side of a partition, where one downing takes both).
/// </summary>
public sealed class CoordinatorFencingTests : TestKit
{
    private const string ClusterConfig = """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        # The test's system must outlive the downing of its only node.
        akka.cluster.run-coordinated-shutdown-when-down = off
        """;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly ReplicaProbes _r;

    public CoordinatorFencingTests(ITestOutputHelper output) : base(ClusterConfig + "\n" + InMemoryPersistence, output: output) =>
        _r = new ReplicaProbes(CreateTestProbe("p"), CreateTestProbe("s1"), CreateTestProbe("s2"));

    [Fact]
    public void A_coordinator_whose_node_was_downed_with_the_primary_s_persists_no_failover()
    {
        var cluster = Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitAssert(() => Assert.Equal(MemberStatus.Up, cluster.SelfMember.Status), Patience);
        var settings = Settings();
        var coordinator = Sys.ActorOf(EpochCoordinator.Props(settings), "coordinator");
        _r.StartRunning(coordinator);
        _r.CommitCheckpoint(coordinator, 1);

        EventFilter.Warning(contains: "fenced").ExpectOne(Patience, () => cluster.Down(cluster.SelfAddress));
        foreach (var secondary in _r.Secondaries)
            Assert.DoesNotContain(secondary.ReceiveWhile<object>(TimeSpan.FromMilliseconds(500), m => m), m => m is AssignSecondary { Generation: > Gen });
        coordinator.Tell(GetCoordinatorStatus.Instance);
        Assert.Equal(Gen, ExpectMsg<CoordinatorStatus>().Generation);

        // What the next coordinator recovers: generation 1, no decision of the downed one.
        Watch(coordinator);
        Sys.Stop(coordinator);
        ExpectTerminated(coordinator);
        var next = Sys.ActorOf(EpochCoordinator.Props(settings), "next");
        next.Tell(GetCoordinatorStatus.Instance);
        var status = ExpectMsg<CoordinatorStatus>(Patience);
        Assert.Equal((Gen, "p", 1L), (status.Generation, status.Primary, status.LastCommitted));
    }

    [Fact]
    public void A_coordinator_that_starts_on_a_node_already_downed_takes_nothing_over()
    {
        var cluster = Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        AwaitAssert(() => Assert.Equal(MemberStatus.Up, cluster.SelfMember.Status), Patience);
        cluster.Down(cluster.SelfAddress);
        AwaitAssert(() => Assert.Equal(MemberStatus.Down, cluster.SelfMember.Status), Patience);

        // As a backoff supervisor restarting it after a refused write would start it.
        EventFilter.Info(contains: "took over the journal").Expect(0, () =>
            EventFilter.Warning(contains: "fenced").ExpectOne(Patience, () => Sys.ActorOf(EpochCoordinator.Props(Settings()), "late")));
        Sys.ActorSelection("/user/late").Tell(GetCoordinatorStatus.Instance);
        Assert.Equal(0L, ExpectMsg<CoordinatorStatus>(Patience).Generation);
    }

    [Fact]
    public void A_coordinator_that_recovers_before_its_node_has_seen_itself_in_the_cluster_is_not_fenced()
    {
        // Akka's read view calls a node it has not seen in any gossip yet Removed: on a cluster just
        // formed, the singleton can recover that early. The coordinator must go on, not fence for good.
        var cluster = Cluster.Get(Sys);
        Assert.Equal(MemberStatus.Removed, cluster.SelfMember.Status);
        EventFilter.Warning(contains: "fenced").Expect(0, () =>
        {
            // Taking the journal over is what a fenced coordinator never does.
            EventFilter.Info(contains: "took over the journal").ExpectOne(Patience, () => Sys.ActorOf(EpochCoordinator.Props(Settings()), "early"));
            cluster.Join(cluster.SelfAddress);
            AwaitAssert(() => Assert.Equal(MemberStatus.Up, cluster.SelfMember.Status), Patience);
        });
    }

    [Theory]
    [InlineData(false, null, false)] // not in its own view yet: the view has not caught up
    [InlineData(true, null, true)] // removed: the cluster is shut down
    [InlineData(false, MemberStatus.Down, true)]
    [InlineData(false, MemberStatus.Exiting, true)]
    [InlineData(false, MemberStatus.Up, false)]
    [InlineData(false, MemberStatus.Joining, false)]
    [InlineData(true, MemberStatus.Up, true)]
    public void A_node_is_gone_when_downed_leaving_or_shut_down_not_before_its_view_has_seen_it(bool terminated, MemberStatus? self, bool gone) =>
        Assert.Equal(gone, EpochCoordinator.IsGone(terminated, self));
}
