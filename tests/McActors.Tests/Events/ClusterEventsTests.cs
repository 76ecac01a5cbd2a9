using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Events;
using McActors.Tests.Checkpointing;
using CheckpointCommitted = McActors.Events.CheckpointCommitted;
using Xunit.Abstractions;
using static McActors.Tests.Checkpointing.ReplicaProbes;

namespace McActors.Tests.Events;

/// <summary>
/// Two cluster nodes in this process: the coordinator runs on the test's system (its replicas are
/// probes there), and an actor of the other node, subscribed on that node's EventStream only,
/// hears its checkpoints through the topic and the node's relay, serialized across the nodes.
/// </summary>
public sealed class ClusterEventsTests : TestKit
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static string NodeConfig => $"""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.pub-sub.gossip-interval = 200ms
        akka.coordinated-shutdown.exit-clr = off
        {McActorsSettings.DefaultConfig.ToString(true)}
        mcactors.events.relay-checkpoints = on
        {InMemoryPersistence}
        """;

    private readonly ActorSystem _other;
    private readonly ReplicaProbes _r;

    public ClusterEventsTests(ITestOutputHelper output) : base(NodeConfig, "mcactors", output)
    {
        _other = ActorSystem.Create("mcactors", ConfigurationFactory.ParseString(NodeConfig));
        var seed = Cluster.Get(Sys).SelfAddress;
        Cluster.Get(Sys).Join(seed);
        Cluster.Get(_other).Join(seed);
        AwaitAssert(() => Assert.Equal(2, Cluster.Get(Sys).State.Members.Count(m => m.Status == MemberStatus.Up)), Patience);
        _r = new ReplicaProbes(CreateTestProbe("p"), CreateTestProbe("s1"), CreateTestProbe("s2"));
    }

    [Fact]
    public async Task A_subscriber_on_another_node_s_EventStream_receives_CheckpointCommitted()
    {
        // The other node runs what every node runs: the coordinator proxy, and the event relay beside it.
        CoordinatorSingleton.StartProxy(_other);
        var subscriber = CreateTestProbe(_other, "subscriber");
        _other.EventStream.Subscribe(subscriber.Ref, typeof(CheckpointCommitted));
        // The coordinator's node must know of the other node's subscription before it publishes.
        var mediator = DistributedPubSub.Get(Sys).Mediator;
        await AwaitAssertAsync(async () =>
            Assert.Contains(McActorsEvents.CheckpointsTopic, (await mediator.Ask<CurrentTopics>(GetTopics.Instance, TimeSpan.FromSeconds(1))).Topics), Patience);

        var coordinator = Sys.ActorOf(EpochCoordinator.Props(Settings()), "coordinator");
        _r.StartRunning(coordinator);
        _r.CommitCheckpoint(coordinator, 1);

        var committed = subscriber.ExpectMsg<CheckpointCommitted>(Patience);
        Assert.Equal((Gen, 1L), (committed.Generation, committed.Epoch));
        Assert.True(committed.Latency > TimeSpan.Zero);
    }

    protected override void AfterAll()
    {
        _other.Terminate().Wait(Patience);
        base.AfterAll();
    }
}
