using Akka.Actor;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Protocol;
using Xunit.Abstractions;
using static McActors.Tests.Checkpointing.ReplicaProbes;

namespace McActors.Tests.Checkpointing;

/// <summary>
/// The coordinator's registration, role assignment and two-phase commit, with TestProbes as the
/// primary and two secondaries, on the in-memory journal.
/// </summary>
public sealed class EpochCoordinatorTests : TestKit
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private readonly ReplicaProbes _r;

    public EpochCoordinatorTests(ITestOutputHelper output) : base(InMemoryPersistence, output: output) =>
        _r = new ReplicaProbes(CreateTestProbe("p"), CreateTestProbe("s1"), CreateTestProbe("s2"));

    private IActorRef Start(McActorsSettings settings)
    {
        var coordinator = Sys.ActorOf(EpochCoordinator.Props(settings), "coordinator");
        _r.StartRunning(coordinator);
        return coordinator;
    }

    private CoordinatorStatus Status(IActorRef coordinator)
    {
        coordinator.Tell(GetCoordinatorStatus.Instance);
        return ExpectMsg<CoordinatorStatus>();
    }

    [Fact]
    public void Roles_are_assigned_only_once_enough_replicas_registered_and_late_ones_stay_out()
    {
        var coordinator = Sys.ActorOf(EpochCoordinator.Props(Settings()));
        Register(coordinator, _r.Primary);
        Register(coordinator, _r.S1);
        _r.Primary.ExpectNoMsg(Quiet);

        Register(coordinator, _r.S2);
        _r.S1.ExpectMsg<AssignSecondary>();
        _r.S2.ExpectMsg<AssignSecondary>();
        _r.AssumeSecondariesThenPrimary(coordinator);

        var late = CreateTestProbe("late");
        Register(coordinator, late);
        late.ExpectNoMsg(Quiet);
        var status = Status(coordinator);
        Assert.Equal((Gen, "p"), (status.Generation, status.Primary));
        Assert.Equal(["s1", "s2"], status.Secondaries);
        Assert.False(status.Degraded);
    }

    [Fact]
    public void A_registration_is_answered_with_the_primary_and_its_NBD_address()
    {
        var coordinator = Start(Settings());
        // Registrations carry each replica's NBD address; the answer names the primary's.
        coordinator.Tell(new RegisterReplica("p", _r.Primary.Ref, "127.0.0.1", 7000, null, 0, 0, ReplicaRole.Primary, Gen, Nbd: "127.0.0.1:10809"), _r.Primary.Ref);
        Assert.Equal(new ReplicaRegistered("p", Gen, "p", "127.0.0.1:10809"), _r.Primary.ExpectMsg<ReplicaRegistered>());
        coordinator.Tell(new RegisterReplica("s1", _r.S1.Ref, "127.0.0.1", 7001, null, 0, 0, ReplicaRole.Secondary, Gen, Nbd: "127.0.0.1:10810"), _r.S1.Ref);
        Assert.Equal(new ReplicaRegistered("s1", Gen, "p", "127.0.0.1:10809"), _r.S1.ExpectMsg<ReplicaRegistered>());
        // A primary that stops serving NBD says so by registering without an address.
        coordinator.Tell(new RegisterReplica("p", _r.Primary.Ref, "127.0.0.1", 7000, null, 0, 0, ReplicaRole.Primary, Gen), _r.Primary.Ref);
        _r.Primary.ExpectMsg<ReplicaRegistered>();
        coordinator.Tell(new RegisterReplica("s1", _r.S1.Ref, "127.0.0.1", 7001, null, 0, 0, ReplicaRole.Secondary, Gen), _r.S1.Ref);
        Assert.Null(_r.S1.ExpectMsg<ReplicaRegistered>().PrimaryNbd);
    }

    [Fact]
    public void A_missing_RoleAssumed_gets_its_assignment_resent_and_epochs_wait_for_it()
    {
        var coordinator = Sys.ActorOf(EpochCoordinator.Props(Settings("mcactors.coordinator.assign-retry = 200ms")));
        foreach (var probe in _r.All)
            Register(coordinator, probe);
        _r.S1.ExpectMsg<AssignSecondary>();
        _r.S2.ExpectMsg<AssignSecondary>();
        coordinator.Tell(new RoleAssumed(Gen, "s1", ReplicaRole.Secondary), _r.S1.Ref);

        // s2 never answered: it hears its assignment again, and the primary waits (it would connect to s2's data plane).
        coordinator.Tell(new CheckpointNow(Gen));
        _r.S2.ExpectMsg<AssignSecondary>(TimeSpan.FromSeconds(1));
        _r.Primary.ExpectNoMsg(TimeSpan.Zero);

        coordinator.Tell(new RoleAssumed(Gen, "s2", ReplicaRole.Secondary), _r.S2.Ref);
        _r.Primary.ExpectMsg<AssignPrimary>();
        coordinator.Tell(new RoleAssumed(Gen, "p", ReplicaRole.Primary), _r.Primary.Ref);
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
    }

    [Fact]
    public void When_all_prepared_checkpoints_commit_to_everyone_in_order()
    {
        var coordinator = Start(Settings());
        coordinator.Tell(new CheckpointNow(Gen));
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.ExpectClose(2);

        _r.Closed(coordinator, 1, writes: 3, bytes: 12288);
        _r.Closed(coordinator, 2, writes: 1, bytes: 512);
        Prepared(coordinator, _r.S1, 1);
        Prepared(coordinator, _r.S2, 2);
        Prepared(coordinator, _r.S1, 2);

        ExpectCommit(1, _r.All);
        ExpectCommit(2, _r.All);
        var status = Status(coordinator);
        Assert.Equal((2L, 2L, 4L, 12800L, 0), (status.LastCommitted, status.CheckpointsCommitted, status.WritesCommitted, status.BytesCommitted, status.InFlight));
        Assert.True(status.CommitP99Ms >= status.CommitP50Ms && status.CommitP50Ms > 0);
    }

    [Fact]
    public void A_slow_secondary_gets_Prepare_resent_then_is_dropped_and_the_checkpoint_commits_without_it()
    {
        var coordinator = Start(Settings("mcactors.checkpoint.prepare-timeout = 300ms"));
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);

        // Resent after a quarter of the timeout: a lost Prepare is retried before anyone is dropped.
        Assert.Equal(new Prepare(Gen, 1), _r.S2.ExpectMsg<Prepare>(TimeSpan.FromSeconds(1)));
        EventFilter.Warning(contains: "secondary s2 dropped").ExpectOne(TimeSpan.FromSeconds(2), () => { });
        ExpectCommit(1, _r.Primary, _r.S1);

        var status = Status(coordinator);
        Assert.Equal(["s1"], status.Secondaries);
        Assert.Equal(1, status.LastCommitted);
        // s2 is out of the set: no Prepare for the next epoch.
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2, _r.S1);
        var toS2 = _r.S2.ReceiveWhile<object>(Quiet, m => m);
        Assert.DoesNotContain(toS2, m => m is Commit or Prepare { Epoch: 2 });
    }

    [Fact]
    public void A_secondary_dropped_for_a_slow_prepare_is_told_and_so_is_the_primary_that_streams_to_it()
    {
        var coordinator = Start(Settings("mcactors.checkpoint.prepare-timeout = 300ms"));
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);

        var left = _r.S2.FishForMessage<LeftReplicaSet>(_ => true, TimeSpan.FromSeconds(3));
        Assert.Equal((Gen, "s2"), (left.Generation, left.Replica));
        Assert.Contains("Prepared", left.Reason);
        Assert.Equal(0, left.ResyncAttempt); // a member since the generation began
        Assert.Equal(left, _r.Primary.FishForMessage<LeftReplicaSet>(_ => true, TimeSpan.FromSeconds(3)));
        // Only the dropped one and the primary hear of it.
        Assert.DoesNotContain(_r.S1.ReceiveWhile<object>(Quiet, m => m), m => m is LeftReplicaSet);
    }

    [Fact]
    public void A_lost_Prepared_is_recovered_by_the_resent_Prepare()
    {
        var coordinator = Start(Settings());
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);
        // s2's Prepared(1) is "lost": it answers only the resent Prepare.
        _r.Primary.ExpectNoMsg(Quiet);

        Assert.Equal(new Prepare(Gen, 1), _r.S2.ExpectMsg<Prepare>(TimeSpan.FromSeconds(1)));
        Prepared(coordinator, _r.S2, 1);

        ExpectCommit(1, _r.All);
        Assert.Equal(["s1", "s2"], Status(coordinator).Secondaries);
    }

    [Fact]
    public void Duplicate_Prepared_and_EpochClosed_change_nothing()
    {
        var coordinator = Start(Settings());
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);
        Prepared(coordinator, _r.S1, 1);
        _r.Primary.ExpectNoMsg(Quiet);
        Prepared(coordinator, _r.S2, 1);
        ExpectCommit(1, _r.All);

        Prepared(coordinator, _r.S1, 1);
        Prepared(coordinator, _r.S2, 1);
        _r.Closed(coordinator, 1);
        _r.Primary.ExpectNoMsg(Quiet);
        var status = Status(coordinator);
        Assert.Equal((1L, 1L), (status.LastCommitted, status.CheckpointsCommitted));
    }

    [Fact]
    public void Repeated_registration_is_only_acknowledged_and_a_new_ref_hears_its_assignment_and_the_last_Commit_again()
    {
        var coordinator = Start(Settings());
        _r.CommitCheckpoint(coordinator, 1);

        Register(coordinator, _r.S1, 7001);
        _r.S1.ExpectNoMsg(Quiet);

        // s1 restarted: same id, new actor.
        var restarted = CreateTestProbe();
        coordinator.Tell(new RegisterReplica("s1", restarted.Ref, "127.0.0.1", 7001, null, 1, 1), restarted.Ref);
        Assert.Equal(new ReplicaRegistered("s1", Gen, "p"), restarted.ExpectMsg<ReplicaRegistered>());
        Assert.Equal(1, restarted.ExpectMsg<AssignSecondary>().LastCommitted);
        Assert.Equal(new Commit(Gen, 1, 2), restarted.ExpectMsg<Commit>());
        coordinator.Tell(new CheckpointNow(Gen));
        Assert.Equal(new Prepare(Gen, 2), restarted.ExpectMsg<Prepare>());
    }

    [Fact]
    public void A_stale_generation_Prepared_gets_StaleGeneration_and_changes_nothing()
    {
        var coordinator = Start(Settings());
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S2, 1);

        coordinator.Tell(new Prepared(Gen - 1, 1, "s1"), _r.S1.Ref);
        Assert.Equal(new StaleGeneration(Gen, Gen - 1, nameof(Prepared)), _r.S1.ExpectMsg<StaleGeneration>());
        _r.Primary.ExpectNoMsg(Quiet);
        Assert.Equal(0, Status(coordinator).LastCommitted);

        Prepared(coordinator, _r.S1, 1);
        ExpectCommit(1, _r.All);
    }

    [Fact]
    public void At_most_max_in_flight_epochs_are_closed_until_a_commit_frees_a_slot()
    {
        var coordinator = Start(Settings(
            "mcactors.checkpoint.epoch-interval = 50ms",
            "mcactors.checkpoint.max-in-flight = 2",
            "mcactors.checkpoint.prepare-timeout = 10s"));
        _r.ExpectClose(1);
        _r.ExpectClose(2);
        _r.Closed(coordinator, 1);
        _r.Closed(coordinator, 2);
        _r.Primary.ExpectNoMsg(Quiet);
        Assert.Equal(2, Status(coordinator).InFlight);

        Prepared(coordinator, _r.S1, 2);
        Prepared(coordinator, _r.S2, 2);
        // The epoch that was due while the pipeline was full closes as soon as a slot frees.
        Assert.Equal(new Commit(Gen, 1, 2), _r.Primary.ExpectMsg<Commit>());
        Assert.Equal(new CloseEpoch(Gen, 3), _r.Primary.ExpectMsg<CloseEpoch>());
        Assert.Equal(new Commit(Gen, 2, 2), _r.Primary.ExpectMsg<Commit>());
    }

    [Fact]
    public void A_terminated_secondary_is_dropped_and_checkpoints_commit_without_it()
    {
        var coordinator = Start(Settings());
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);

        EventFilter.Warning(contains: "secondary s2 dropped").ExpectOne(() => Sys.Stop(_r.S2.Ref));
        ExpectCommit(1, _r.Primary, _r.S1);
        Assert.Equal(["s1"], Status(coordinator).Secondaries);
    }

    [Fact]
    public void A_replica_that_joins_when_the_set_has_room_is_resynced_from_the_primary_and_then_prepares()
    {
        var coordinator = Start(Settings());
        Sys.Stop(_r.S2.Ref); // s2 leaves: the set has room for one secondary
        AwaitAssert(() => Assert.Equal(["s1"], Status(coordinator).Secondaries));

        var joiner = CreateTestProbe("s3");
        Register(coordinator, joiner, 7003);
        var assign = joiner.ExpectMsg<AssignSecondary>();
        Assert.Equal((Gen, "p", true), (assign.Generation, assign.PrimaryId, assign.Resync));

        byte[] digest = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        coordinator.Tell(new ResyncReady(Gen, "s3", 65536, digest, assign.ResyncAttempt), joiner.Ref);
        var add = _r.Primary.FishForMessage<AddSecondary>(_ => true);
        Assert.Equal((Gen, "s3", 7003, 65536, assign.ResyncAttempt), (add.Generation, add.Endpoint.ReplicaId, add.Endpoint.Port, add.ChunkBytes, add.Attempt));
        Assert.Equal(digest, add.Digest);

        coordinator.Tell(new ResyncStatus(Gen, new ResyncProgress("s3", 1 << 20, 1 << 20, 4096, false), add.Attempt), _r.Primary.Ref);
        Assert.Equal(4096, Status(coordinator).Resyncing.Single().CopiedBytes);
        Assert.Equal(["s1"], Status(coordinator).Secondaries); // not protecting anything yet

        coordinator.Tell(new ResyncCompleted(Gen, "s3", 1, add.Attempt), _r.Primary.Ref);
        AwaitAssert(() => Assert.Equal(["s1", "s3"], Status(coordinator).Secondaries));
        Assert.Empty(Status(coordinator).Resyncing);

        // From now on its Prepared counts: checkpoint 1 waits for it.
        coordinator.Tell(new CheckpointNow(Gen));
        _r.Primary.FishForMessage<CloseEpoch>(_ => true);
        Assert.Equal(new Prepare(Gen, 1), joiner.FishForMessage<Prepare>(_ => true));
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);
        _r.Primary.ExpectNoMsg(Quiet);
        coordinator.Tell(new Prepared(Gen, 1, "s3"), joiner.Ref);
        ExpectCommit(1, _r.Primary, _r.S1, joiner);
    }

    /// <summary>s2 is lost, and s3 is resynced in (by the attempt returned) in its place.</summary>
    private (Akka.TestKit.TestProbe Joiner, long Attempt) ReplaceS2WithAResyncedS3(IActorRef coordinator)
    {
        Sys.Stop(_r.S2.Ref);
        AwaitAssert(() => Assert.Equal(["s1"], Status(coordinator).Secondaries));
        var joiner = CreateTestProbe("s3");
        Register(coordinator, joiner, 7003);
        var attempt = joiner.ExpectMsg<AssignSecondary>().ResyncAttempt;
        coordinator.Tell(new ResyncReady(Gen, "s3", 65536, null, attempt), joiner.Ref);
        _r.Primary.FishForMessage<AddSecondary>(_ => true);
        coordinator.Tell(new ResyncCompleted(Gen, "s3", 1, attempt), _r.Primary.Ref);
        AwaitAssert(() => Assert.Equal(["s1", "s3"], Status(coordinator).Secondaries));
        return (joiner, attempt);
    }

    [Fact]
    public void A_resynced_secondary_dropped_again_is_told_which_membership_ended()
    {
        var coordinator = Start(Settings("mcactors.checkpoint.prepare-timeout = 300ms"));
        var (joiner, attempt) = ReplaceS2WithAResyncedS3(coordinator);

        // s3 never answers Prepared(1): dropped, and the LeftReplicaSet names the attempt it joined by.
        coordinator.Tell(new CheckpointNow(Gen));
        _r.Primary.FishForMessage<CloseEpoch>(_ => true);
        _r.Closed(coordinator, 1);
        Prepared(coordinator, _r.S1, 1);
        var left = joiner.FishForMessage<LeftReplicaSet>(_ => true, TimeSpan.FromSeconds(3));
        Assert.Equal((Gen, "s3", (long?)attempt), (left.Generation, left.Replica, left.ResyncAttempt));
        Assert.NotEqual(0, attempt);
        Assert.Equal(left, _r.Primary.FishForMessage<LeftReplicaSet>(_ => true, TimeSpan.FromSeconds(3)));
    }

    [Fact]
    public void A_resynced_secondary_that_registers_again_is_assigned_with_the_membership_it_joined_by()
    {
        var coordinator = Start(Settings());
        var (joiner, attempt) = ReplaceS2WithAResyncedS3(coordinator);

        // Registered again (a restart, or a moved coordinator's first contact): its assignment names the
        // attempt it is the member of, so that a later LeftReplicaSet about that membership is not ignored.
        var again = CreateTestProbe("s3-again");
        coordinator.Tell(new RegisterReplica("s3", again.Ref, "127.0.0.1", 7003, null, 0, 0), again.Ref);
        var assign = again.FishForMessage<AssignSecondary>(_ => true);
        Assert.Equal((Gen, false, attempt), (assign.Generation, assign.Resync, assign.ResyncAttempt));
        Assert.NotEqual(0, attempt);
    }

    [Fact]
    public void A_secondary_whose_resync_completes_before_the_primary_closed_an_open_checkpoint_is_not_counted_for_it()
    {
        var coordinator = Start(Settings());
        Sys.Stop(_r.S1.Ref);
        Sys.Stop(_r.S2.Ref); // degraded: no secondary left
        AwaitAssert(() => Assert.Empty(Status(coordinator).Secondaries));
        var joiner = CreateTestProbe("s3");
        Register(coordinator, joiner, 7003);
        var attempt = joiner.ExpectMsg<AssignSecondary>().ResyncAttempt;
        coordinator.Tell(new ResyncReady(Gen, "s3", 65536, null, attempt), joiner.Ref);
        _r.Primary.FishForMessage<AddSecondary>(_ => true);

        // Checkpoint 1 is opened (Prepare(1) goes to nobody); the primary, still in epoch 1, says
        // "in sync from 1", and only then closes 1: ResyncCompleted is handled before EpochClosed(1).
        coordinator.Tell(new CheckpointNow(Gen));
        Assert.Equal(new CloseEpoch(Gen, 1), _r.Primary.FishForMessage<CloseEpoch>(_ => true));
        coordinator.Tell(new ResyncCompleted(Gen, "s3", 1, attempt), _r.Primary.Ref);
        _r.Closed(coordinator, 1);

        // 1 committed on no secondary: the primary must fsync its image and min-replicas ≥ 1 must hold output.
        Assert.Equal(new Commit(Gen, 1, 0), _r.Primary.FishForMessage<Commit>(_ => true));
        Assert.Equal(["s3"], Status(coordinator).Secondaries);
        // What a verifier of checkpoint 1 must not ask of s3, and may ask from checkpoint 2 on.
        Assert.Empty(Status(coordinator).SecondariesOf(1));
        Assert.Equal(["s3"], Status(coordinator).SecondariesOf(2));

        // A replica that comes back hears the count of commit 1, not today's replica set.
        var again = CreateTestProbe("s3-again");
        coordinator.Tell(new RegisterReplica("s3", again.Ref, "127.0.0.1", 7003, null, 0, 0, ReplicaRole.Secondary, Gen), again.Ref);
        again.ExpectMsg<ReplicaRegistered>();
        again.ExpectMsg<AssignSecondary>();
        Assert.Equal(new Commit(Gen, 1, 0), again.ExpectMsg<Commit>());

        // Checkpoint 2 is the first it takes part in: it is asked, waited for, and counted.
        coordinator.Tell(new CheckpointNow(Gen));
        Assert.Equal(new CloseEpoch(Gen, 2), _r.Primary.FishForMessage<CloseEpoch>(_ => true));
        Assert.Equal(new Prepare(Gen, 2), again.FishForMessage<Prepare>(_ => true));
        _r.Closed(coordinator, 2);
        _r.Primary.ExpectNoMsg(Quiet);
        coordinator.Tell(new Prepared(Gen, 2, "s3"), again.Ref);
        Assert.Equal(new Commit(Gen, 2, 1), _r.Primary.FishForMessage<Commit>(_ => true));
    }

    [Fact]
    public void The_completion_of_a_forgotten_resync_attempt_is_ignored_and_only_the_current_attempt_s_adds_the_replica()
    {
        var coordinator = Start(Settings("mcactors.resync.stall-timeout = 300ms"));
        Sys.Stop(_r.S2.Ref);
        AwaitAssert(() => Assert.Equal(["s1"], Status(coordinator).Secondaries));
        var joiner = CreateTestProbe("s3");
        Register(coordinator, joiner, 7003);
        var first = joiner.FishForMessage<AssignSecondary>(a => a.Resync);
        coordinator.Tell(new ResyncReady(Gen, "s3", 65536, null, first.ResyncAttempt), joiner.Ref);
        _r.Primary.FishForMessage<AddSecondary>(a => a.Attempt == first.ResyncAttempt);

        // The first attempt reports nothing: it is forgotten, and the next registration starts another.
        AwaitAssert(() => Assert.Empty(Status(coordinator).Resyncing), TimeSpan.FromSeconds(5));
        Register(coordinator, joiner, 7003);
        var second = joiner.FishForMessage<AssignSecondary>(a => a.Resync);
        Assert.NotEqual(first.ResyncAttempt, second.ResyncAttempt);

        // The first attempt's copy ends late (its joiner never took the second one's data): ignored.
        EventFilter.Warning(contains: "ignored").ExpectOne(() =>
            coordinator.Tell(new ResyncCompleted(Gen, "s3", 1, first.ResyncAttempt), _r.Primary.Ref));
        Assert.Equal(["s1"], Status(coordinator).Secondaries);
        Assert.Equal("s3", Status(coordinator).Resyncing.Single().Replica);

        coordinator.Tell(new ResyncCompleted(Gen, "s3", 1, second.ResyncAttempt), _r.Primary.Ref);
        AwaitAssert(() => Assert.Equal(["s1", "s3"], Status(coordinator).Secondaries));
    }

    [Fact]
    public void A_replica_that_joins_a_full_set_stays_out()
    {
        var coordinator = Start(Settings());
        var late = CreateTestProbe("late");
        Register(coordinator, late);
        late.ExpectNoMsg(Quiet);
        Assert.Empty(Status(coordinator).Resyncing);
    }

    /// <summary>Commits checkpoint 1 on all, then s2 alone prepares checkpoint 2 (the primary closed it).</summary>
    private void CommitOneThenS2PreparesTwo(IActorRef coordinator)
    {
        _r.CommitCheckpoint(coordinator, 1);
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2);
        _r.Closed(coordinator, 2);
        Prepared(coordinator, _r.S2, 2);
    }

    [Fact]
    public void A_terminated_primary_is_replaced_by_the_secondary_that_prepared_the_most_at_the_last_committed_checkpoint()
    {
        var coordinator = Start(Settings());
        CommitOneThenS2PreparesTwo(coordinator);

        EventFilter.Warning(contains: "failing over to s2 as primary of generation 2 at checkpoint 1").ExpectOne(() => Sys.Stop(_r.Primary.Ref));

        // The other secondary rolls back to checkpoint 1 and follows s2; only then is s2 told to be primary.
        var follow = _r.S1.FishForMessage<AssignSecondary>(_ => true);
        Assert.Equal((2L, "s2", 1L), (follow.Generation, follow.PrimaryId, follow.LastCommitted));
        _r.S2.ExpectNoMsg(Quiet);
        coordinator.Tell(new RoleAssumed(2, "s1", ReplicaRole.Secondary), _r.S1.Ref);
        var promote = _r.S2.FishForMessage<AssignPrimary>(_ => true);
        Assert.Equal((2L, 1L), (promote.Generation, promote.LastCommitted));
        Assert.Equal(["s1"], promote.Secondaries.Select(e => e.ReplicaId));

        var promotedAt = DateTime.UtcNow;
        coordinator.Tell(new Promoted(2, "s2", 1, 1, 10, 40960, 1.5, promotedAt), _r.S2.Ref);
        coordinator.Tell(new RoleAssumed(2, "s2", ReplicaRole.Primary), _r.S2.Ref);

        // Generation 2 checkpoints continue after the last committed one, with s2 as primary.
        coordinator.Tell(new CheckpointNow(2));
        Assert.Equal(new CloseEpoch(2, 2), _r.S2.FishForMessage<CloseEpoch>(_ => true));
        Assert.Equal(new Prepare(2, 2), _r.S1.FishForMessage<Prepare>(_ => true));

        var status = Status(coordinator);
        Assert.Equal((2L, "s2", 1L, 1L), (status.Generation, status.Primary, status.LastCommitted, status.Failovers));
        Assert.Equal(["s1"], status.Secondaries);
        var failover = status.LastFailover!;
        Assert.Equal(("p", "s2", 1L, 1L, 10L), (failover.FromPrimary, failover.ToPrimary, failover.TargetCheckpoint, failover.RolledBackEpochs, failover.RolledBackBlocks));
        Assert.Equal(promotedAt, failover.RolledBackAt);
        Assert.NotNull(failover.ResumedAt);
        Assert.True(failover.ResumedAt >= failover.PromotedAt);
    }

    [Fact]
    public void A_Promoted_report_that_arrives_after_the_new_primary_s_RoleAssumed_still_completes_the_failover_timeline()
    {
        var coordinator = Start(Settings());
        CommitOneThenS2PreparesTwo(coordinator);
        Sys.Stop(_r.Primary.Ref);
        _r.S1.FishForMessage<AssignSecondary>(a => a.Generation == 2);
        coordinator.Tell(new RoleAssumed(2, "s1", ReplicaRole.Secondary), _r.S1.Ref);
        _r.S2.FishForMessage<AssignPrimary>(a => a.Generation == 2);
        // RoleAssumed comes straight back; Promoted comes through the proxy (and the singleton's supervisor) and is overtaken.
        coordinator.Tell(new RoleAssumed(2, "s2", ReplicaRole.Primary), _r.S2.Ref);
        var promotedAt = DateTime.UtcNow;
        coordinator.Tell(new Promoted(2, "s2", 1, 1, 10, 40960, 1.5, promotedAt), _r.S2.Ref);
        AwaitAssert(() => Assert.Equal(promotedAt, Status(coordinator).LastFailover?.RolledBackAt));
        Assert.Equal(10, Status(coordinator).LastFailover!.RolledBackBlocks);
    }

    [Fact]
    public void After_a_failover_the_old_generation_changes_nothing()
    {
        var coordinator = Start(Settings());
        CommitOneThenS2PreparesTwo(coordinator);
        var oldPrimary = _r.Primary.Ref;
        Sys.Stop(oldPrimary);
        _r.S1.FishForMessage<AssignSecondary>(_ => true);
        coordinator.Tell(new RoleAssumed(2, "s1", ReplicaRole.Secondary), _r.S1.Ref);
        _r.S2.FishForMessage<AssignPrimary>(_ => true);
        coordinator.Tell(new RoleAssumed(2, "s2", ReplicaRole.Primary), _r.S2.Ref);

        // A late EpochClosed and Prepared of generation 1 are refused, and commit nothing.
        var late = CreateTestProbe();
        coordinator.Tell(new EpochClosed(Gen, 2, 1, 4096), late.Ref);
        Assert.Equal(new StaleGeneration(2, Gen, nameof(EpochClosed)), late.ExpectMsg<StaleGeneration>());
        coordinator.Tell(new Prepared(Gen, 2, "s1"), late.Ref);
        Assert.Equal(new StaleGeneration(2, Gen, nameof(Prepared)), late.ExpectMsg<StaleGeneration>());
        _r.S1.ExpectNoMsg(Quiet);
        Assert.Equal(1, Status(coordinator).LastCommitted);
    }

    [Fact]
    public void A_primary_that_restarted_is_failed_over_when_it_registers_again_without_a_role()
    {
        var coordinator = Start(Settings());
        CommitOneThenS2PreparesTwo(coordinator);
        var restarted = CreateTestProbe("p-restarted");
        EventFilter.Warning(contains: "it restarted").ExpectOne(() =>
            coordinator.Tell(new RegisterReplica("p", restarted.Ref, "127.0.0.1", 7000, null, 0, 0), restarted.Ref));
        Assert.Equal(2, _r.S1.FishForMessage<AssignSecondary>(_ => true).Generation);
        restarted.ExpectMsg<ReplicaRegistered>();
        restarted.ExpectNoMsg(Quiet); // it is out of the replica set: no assignment
    }

    [Fact]
    public void A_secondary_that_does_not_assume_in_time_is_left_out_and_the_new_primary_starts()
    {
        var coordinator = Start(Settings("mcactors.coordinator.assign-timeout = 300ms")); // checked at each 1 s assign retry
        CommitOneThenS2PreparesTwo(coordinator);
        Sys.Stop(_r.Primary.Ref);
        _r.S1.FishForMessage<AssignSecondary>(_ => true);
        // s1 never answers: s2 is promoted without it.
        var promote = _r.S2.FishForMessage<AssignPrimary>(_ => true, TimeSpan.FromSeconds(3));
        Assert.Equal(2, promote.Generation);
        Assert.Empty(Status(coordinator).Secondaries);
    }

    /// <summary>
    /// Both secondaries are dropped (checkpoint 2 then commits on the primary alone, degraded), then
    /// the primary dies: no secondary is alive to take over, and the coordinator waits (PrimaryLost).
    /// </summary>
    private IActorRef LoseBothSecondariesThenThePrimary()
    {
        var coordinator = Start(Settings());
        CommitOneThenS2PreparesTwo(coordinator);
        Sys.Stop(_r.S1.Ref);
        Sys.Stop(_r.S2.Ref);
        AwaitAssert(() => Assert.Empty(Status(coordinator).Secondaries));
        EventFilter.Error(contains: "no secondary is alive to take over").ExpectOne(() => Sys.Stop(_r.Primary.Ref));
        return coordinator;
    }

    [Fact]
    public void With_no_secondary_alive_no_replica_is_promoted_and_checkpoints_stop()
    {
        var coordinator = LoseBothSecondariesThenThePrimary();
        // Nobody else holds checkpoint 2, so nobody may take over, not even a dropped secondary coming back.
        var back = CreateTestProbe("s1-back");
        coordinator.Tell(new RegisterReplica("s1", back.Ref, "127.0.0.1", 7001, null, 1, 1), back.Ref);
        back.ExpectMsg<ReplicaRegistered>();
        back.ExpectNoMsg(Quiet);
        coordinator.Tell(new CheckpointNow(Gen));
        var status = Status(coordinator);
        Assert.Equal((Gen, 2L, "p"), (status.Generation, status.LastCommitted, status.Primary));
    }

    [Fact]
    public void A_primary_that_was_left_alone_comes_back_from_its_own_store_once_it_vouches_for_the_last_committed_checkpoint()
    {
        var coordinator = LoseBothSecondariesThenThePrimary();
        var volume = _r.Volume!.VolumeId;
        var back = CreateTestProbe("p-back");
        // Restarted with a store that can roll back only to checkpoint 1 (2 was never prepared there), or of another volume: still waiting.
        coordinator.Tell(new RegisterReplica("p", back.Ref, "127.0.0.1", 7000, volume, 1, 1), back.Ref);
        coordinator.Tell(new RegisterReplica("p", back.Ref, "127.0.0.1", 7000, Guid.NewGuid(), 2, 3), back.Ref);
        back.ExpectMsg<ReplicaRegistered>();
        back.ExpectMsg<ReplicaRegistered>();
        back.ExpectNoMsg(Quiet);
        Assert.Equal(Gen, Status(coordinator).Generation);

        // Its store vouches for checkpoints 2..3: it becomes the primary of the next generation at 2.
        EventFilter.Warning(contains: "failing over to p as primary of generation 2 at checkpoint 2").ExpectOne(() =>
            coordinator.Tell(new RegisterReplica("p", back.Ref, "127.0.0.1", 7000, volume, 2, 3), back.Ref));
        var assign = back.FishForMessage<AssignPrimary>(_ => true);
        Assert.Equal((Gen + 1, 2L, 0), (assign.Generation, assign.LastCommitted, assign.Secondaries.Count));
        coordinator.Tell(new RoleAssumed(Gen + 1, "p", ReplicaRole.Primary), back.Ref);
        AwaitAssert(() =>
        {
            var status = Status(coordinator);
            Assert.Equal((Gen + 1, "p", 2L), (status.Generation, status.Primary, status.LastCommitted));
        });
    }

    [Fact]
    public void A_primary_whose_comeback_from_its_own_store_failed_is_not_promoted_again_before_the_backoff()
    {
        var coordinator = LoseBothSecondariesThenThePrimary();
        var volume = _r.Volume!.VolumeId;
        var back = CreateTestProbe("p-back");
        coordinator.Tell(new RegisterReplica("p", back.Ref, "127.0.0.1", 7000, volume, 2, 3), back.Ref);
        Assert.Equal(Gen + 1, back.FishForMessage<AssignPrimary>(_ => true).Generation);
        // Its store reads fine but refuses the rollback (a damaged log): the promotion fails.
        EventFilter.Error(contains: "no secondary is alive to take over").ExpectOne(() =>
            coordinator.Tell(new ReplicaFailed(Gen + 1, "p", "cannot promote: the rollback log of epoch 3 is damaged"), back.Ref));

        // It registers again at once with the same vouch: no new generation (min backoff is 1 s here).
        coordinator.Tell(new RegisterReplica("p", back.Ref, "127.0.0.1", 7000, volume, 2, 3), back.Ref);
        back.FishForMessage<ReplicaRegistered>(_ => true);
        back.ExpectNoMsg(Quiet);
        Assert.Equal(Gen + 1, Status(coordinator).Generation);

        // After the backoff it is tried again (a transient failure heals).
        AwaitAssert(() =>
        {
            coordinator.Tell(new RegisterReplica("p", back.Ref, "127.0.0.1", 7000, volume, 2, 3), back.Ref);
            Assert.Equal(Gen + 2, Status(coordinator).Generation);
        }, TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void StopGuest_is_forwarded_then_its_checkpoint_commits_and_every_requester_hears_GuestStopped()
    {
        var coordinator = Start(Settings());
        var other = CreateTestProbe();
        coordinator.Tell(StopGuest.Instance);
        coordinator.Tell(StopGuest.Instance, other.Ref);

        _r.Primary.ExpectMsg<StopGuest>();
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1, guestStopped: true);
        Prepared(coordinator, _r.S1, 1);
        Prepared(coordinator, _r.S2, 1);

        ExpectCommit(1, _r.All);
        Assert.Equal(new GuestStopped(Gen, 1), ExpectMsg<GuestStopped>());
        Assert.Equal(new GuestStopped(Gen, 1), other.ExpectMsg<GuestStopped>());
        coordinator.Tell(new CheckpointNow(Gen));
        _r.Primary.ExpectNoMsg(Quiet);
        coordinator.Tell(StopGuest.Instance);
        Assert.Equal(new GuestStopped(Gen, 1), ExpectMsg<GuestStopped>());
    }

    [Fact]
    public void A_close_that_did_not_stop_the_guest_is_followed_by_another_until_the_primary_reports_the_stop()
    {
        // A coordinator that moved re-drives closes the primary had already made; those answer
        // without the guest stopping. The stop checkpoint is the one the primary says it stopped at.
        var coordinator = Start(Settings());
        coordinator.Tell(StopGuest.Instance);
        _r.Primary.ExpectMsg<StopGuest>();
        _r.ExpectClose(1);
        _r.Closed(coordinator, 1);
        _r.ExpectClose(2);
        _r.Closed(coordinator, 2, guestStopped: true);
        foreach (var epoch in new long[] { 1, 2 })
        {
            Prepared(coordinator, _r.S1, epoch);
            Prepared(coordinator, _r.S2, epoch);
            ExpectCommit(epoch, _r.All);
        }
        Assert.Equal(new GuestStopped(Gen, 2), ExpectMsg<GuestStopped>());
        _r.Primary.ExpectNoMsg(Quiet);
    }
}
