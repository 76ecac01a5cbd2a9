using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Events;
using McActors.Protocol;
using McActors.Tests.Checkpointing;
using CheckpointCommitted = McActors.Events.CheckpointCommitted;
using Xunit.Abstractions;
using static McActors.Tests.Checkpointing.ReplicaProbes;
using ResyncCompleted = McActors.Events.ResyncCompleted;
using ResyncProgress = McActors.Events.ResyncProgress;

namespace McActors.Tests.Events;

/// <summary>
/// What the coordinator publishes, as a subscriber on the EventStream sees it (a system that is no
/// cluster gets the events on its EventStream directly), with TestProbes as the replicas.
/// </summary>
public sealed class CoordinatorEventsTests : TestKit
{
    private readonly ReplicaProbes _r;
    private readonly TestProbe _subscriber;

    public CoordinatorEventsTests(ITestOutputHelper output) : base(InMemoryPersistence, output: output)
    {
        _r = new ReplicaProbes(CreateTestProbe("p"), CreateTestProbe("s1"), CreateTestProbe("s2"));
        _subscriber = CreateTestProbe("subscriber");
        Sys.EventStream.Subscribe(_subscriber.Ref, typeof(IMcActorsEvent));
    }

    private IActorRef Start(McActorsSettings settings)
    {
        var coordinator = Sys.ActorOf(EpochCoordinator.Props(settings), "coordinator");
        _r.StartRunning(coordinator);
        return coordinator;
    }

    private T Next<T>() where T : IMcActorsEvent => _subscriber.FishForMessage<T>(_ => true, TimeSpan.FromSeconds(3));

    [Fact]
    public void A_committed_checkpoint_is_published_with_its_commit_latency()
    {
        var coordinator = Start(Settings());
        _r.CommitCheckpoint(coordinator, 1);

        var committed = _subscriber.ExpectMsg<CheckpointCommitted>();
        Assert.Equal((Gen, 1L), (committed.Generation, committed.Epoch));
        Assert.True(committed.Latency > TimeSpan.Zero);
        _r.CommitCheckpoint(coordinator, 2);
        Assert.Equal(2, _subscriber.ExpectMsg<CheckpointCommitted>().Epoch);
    }

    [Fact]
    public void A_secondary_dropped_for_a_slow_prepare_is_published_with_the_reason()
    {
        var coordinator = Start(Settings("mcactors.checkpoint.prepare-timeout = 300ms"));
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);

        var dropped = Next<ReplicaDropped>();
        Assert.Equal((Gen, "s2", 1L), (dropped.Generation, dropped.Replica, dropped.Epoch));
        Assert.Contains("Prepared(1)", dropped.Reason);
        // The checkpoint then commits without it.
        Assert.Equal(1, Next<CheckpointCommitted>().Epoch);
    }

    [Fact]
    public void A_resync_is_published_as_progress_then_completion_then_the_replica_added()
    {
        var coordinator = Start(Settings());
        Sys.Stop(_r.S2.Ref);
        Assert.Equal(("s2", "terminated"), Next<ReplicaDropped>() is var d ? (d.Replica, d.Reason) : default);
        var joiner = CreateTestProbe("s3");
        Register(coordinator, joiner, 7003);
        var attempt = joiner.ExpectMsg<AssignSecondary>().ResyncAttempt;
        coordinator.Tell(new ResyncReady(Gen, "s3", 65536, null, attempt), joiner.Ref);
        _r.Primary.FishForMessage<AddSecondary>(_ => true);

        coordinator.Tell(new ResyncStatus(Gen, new McActors.Protocol.ResyncProgress("s3", 512 << 10, 1 << 20, 4096, false), attempt), _r.Primary.Ref);
        Assert.Equal(new ResyncProgress(Gen, "s3", 512 << 10, 1 << 20, 4096), Next<ResyncProgress>());
        coordinator.Tell(new McActors.Protocol.ResyncCompleted(Gen, "s3", 1, attempt), _r.Primary.Ref);
        Assert.Equal(new ResyncCompleted(Gen, "s3", 1), _subscriber.ExpectMsg<ResyncCompleted>());
        Assert.Equal(new ReplicaAdded(Gen, "s3", 1), _subscriber.ExpectMsg<ReplicaAdded>());
    }

    [Fact]
    public void A_failover_is_published_when_it_starts_and_when_the_new_primary_resumed_with_its_timeline()
    {
        var coordinator = Start(Settings());
        _r.CommitCheckpoint(coordinator, 1);
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2);
        _r.Closed(coordinator, 2);
        Prepared(coordinator, _r.S2, 2);

        Sys.Stop(_r.Primary.Ref);
        Assert.Equal(new FailoverStarted(2, "p", "s2", 1, "terminated"), Next<FailoverStarted>());
        _r.S1.FishForMessage<AssignSecondary>(_ => true);
        coordinator.Tell(new RoleAssumed(2, "s1", ReplicaRole.Secondary), _r.S1.Ref);
        _r.S2.FishForMessage<AssignPrimary>(_ => true);
        var promotedAt = DateTime.UtcNow;
        coordinator.Tell(new Promoted(2, "s2", 1, 1, 10, 40960, 1.5, promotedAt), _r.S2.Ref);
        _subscriber.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // not completed before the guest resumed
        coordinator.Tell(new RoleAssumed(2, "s2", ReplicaRole.Primary), _r.S2.Ref);

        var completed = _subscriber.ExpectMsg<FailoverCompleted>();
        Assert.Equal(2, completed.Generation);
        Assert.Equal(("p", "s2", 1L, promotedAt), (completed.Timeline.FromPrimary, completed.Timeline.ToPrimary,
            completed.Timeline.TargetCheckpoint, completed.Timeline.RolledBackAt));
        Assert.NotNull(completed.Timeline.ResumedAt);
    }
}
