using System.Diagnostics;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Protocol;

namespace McActors.Tests.Checkpointing;

/// <summary>
/// The coordinator's pure parts beside the pipeline: membership and restart detection, re-protection,
/// stop-guest, the failover timeline and latency reporting (refs from a TestKit system, no coordinator).
/// </summary>
public sealed class CoordinatorPartsTests : TestKit
{
    private static readonly VolumeSpec Volume = new(Guid.NewGuid(), 1 << 20, 4096);
    private static readonly DateTime T0 = new(2026, 12, 3, 12, 0, 0, DateTimeKind.Utc);

    private static readonly CoordinatorState Running = CoordinatorState.Empty
        .Apply(new VolumeCreated(Volume))
        .Apply(new RolesAssigned(1, "p", ["s1"]))
        .Apply(new CheckpointCommitted(1, 5, 1, 4096));

    private static RegisterReplica Registration(string id, IActorRef from, ReplicaRole? role = null, long committed = 0, long prepared = 0,
        ReplicaRole? assuming = null, long assumingGeneration = 0, string? nbd = null) =>
        new(id, from, "127.0.0.1", 7000, Volume.VolumeId, committed, prepared, role, role is null ? 0 : 1, nbd, assuming, assumingGeneration);

    [Fact]
    public void A_running_primary_that_registers_from_a_new_ref_with_no_role_restarted_but_one_being_promoted_did_not()
    {
        var members = new ReplicaRegistry();
        var first = CreateTestProbe().Ref;
        Assert.Equal(RegistrationVerdict.MemberRejoined, members.Record(Registration("p", first, ReplicaRole.Primary), 0, Running, primaryRunning: true).Verdict);

        var restarted = CreateTestProbe().Ref;
        var registration = members.Record(Registration("p", restarted), 0, Running, primaryRunning: true);
        Assert.Equal((RegistrationVerdict.PrimaryRestarted, first), (registration.Verdict, registration.Replaced));
        // The same ref again is only acknowledged; so is a primary not yet running (it is what the volume waits for).
        Assert.Equal(RegistrationVerdict.Acknowledge, members.Record(Registration("p", restarted), 0, Running, primaryRunning: true).Verdict);
        Assert.Equal(RegistrationVerdict.MemberRejoined, members.Record(Registration("p", CreateTestProbe().Ref), 0, Running, primaryRunning: false).Verdict);
        // Mid-promotion into this generation: no restart.
        var promoting = Registration("p", CreateTestProbe().Ref, assuming: ReplicaRole.Primary, assumingGeneration: 1);
        Assert.Equal(RegistrationVerdict.MemberRejoined, members.Record(promoting, 0, Running, primaryRunning: true).Verdict);
    }

    [Fact]
    public void Registrations_keep_their_order_a_terminated_ref_is_forgotten_and_before_roles_so_is_its_candidate()
    {
        var members = new ReplicaRegistry();
        var a = CreateTestProbe().Ref;
        var b = CreateTestProbe().Ref;
        members.Record(Registration("a", a, nbd: "127.0.0.1:10809"), null, CoordinatorState.Empty, false);
        members.Record(Registration("b", b), null, CoordinatorState.Empty, false);
        members.Record(Registration("a", a), null, CoordinatorState.Empty, false);
        Assert.Equal([1L, 2L], members.Candidates.Values.OrderBy(c => c.ReplicaId).Select(c => c.RegistrationOrder));
        Assert.Null(members.NbdOf("a")); // it registered again without an NBD address

        Assert.Equal("a", members.Forget(a, hasRoles: true));
        Assert.Equal(["b"], members.Alive().Keys);
        Assert.Contains("a", members.Candidates.Keys);
        Assert.Equal("b", members.Forget(b, hasRoles: false));
        Assert.DoesNotContain("b", members.Candidates.Keys);
        Assert.Null(members.Forget(b, hasRoles: false));
    }

    [Fact]
    public void The_lost_primary_can_come_back_only_while_its_store_vouches_for_the_last_committed_checkpoint_and_no_backoff_holds()
    {
        var members = new ReplicaRegistry();
        members.Record(Registration("p", CreateTestProbe().Ref, committed: 3, prepared: 4), 0, Running, false);
        Assert.False(members.PrimaryCanComeBack(Running, T0)); // 5 is past what it prepared

        members.Record(Registration("p", CreateTestProbe().Ref, committed: 5, prepared: 6), 0, Running, false);
        Assert.True(members.PrimaryCanComeBack(Running, T0));
        Assert.Equal(TimeSpan.FromSeconds(1), members.BackOffPromotion("p", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), T0));
        Assert.False(members.PrimaryCanComeBack(Running, T0 + TimeSpan.FromMilliseconds(999)));
        Assert.True(members.PrimaryCanComeBack(Running, T0 + TimeSpan.FromSeconds(1)));
        // Doubling, up to the maximum; a success forgets it.
        Assert.Equal(TimeSpan.FromSeconds(2), members.BackOffPromotion("p", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), T0));
        Assert.Equal(TimeSpan.FromSeconds(3), members.BackOffPromotion("p", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), T0));
        members.PromotionSucceeded("p");
        Assert.True(members.PrimaryCanComeBack(Running, T0));
    }

    [Fact]
    public void What_was_prepared_past_the_last_committed_checkpoint_is_rolled_back_in_a_new_generation()
    {
        var members = new ReplicaRegistry();
        members.Prepared("s1", 7);
        members.Prepared("s1", 6); // never backwards
        members.Prepared("s2", 4);
        Assert.Equal(7, members.PreparedBy["s1"]);
        members.RollBackPrepared(5);
        Assert.Equal((5L, 4L), (members.PreparedBy["s1"], members.PreparedBy["s2"]));
    }

    [Fact]
    public void A_resync_takes_a_place_while_under_way_and_only_its_own_attempt_counts()
    {
        var resyncs = new ResyncTracker();
        var state = CoordinatorState.Empty.Apply(new RolesAssigned(1, "p", ["s1"]));
        Assert.True(resyncs.HasRoom(state, replicas: 3));
        var attempt = resyncs.Start("s2", incarnation: 2, Volume.SizeBytes, T0);
        Assert.Equal((2L << 32) + 1, attempt);
        Assert.False(resyncs.HasRoom(state, replicas: 3));

        Assert.Equal(ResyncCheck.Current, resyncs.Check("s2", attempt));
        Assert.Equal(ResyncCheck.OtherAttempt, resyncs.Check("s2", attempt - 1));
        Assert.Equal(ResyncCheck.NotUnderWay, resyncs.Check("s3", attempt));
        Assert.Equal(new ResyncProgress("s2", 0, Volume.SizeBytes, 0, false), resyncs.Progress.Single());

        resyncs.Heard(new ResyncProgress("s2", 4096, Volume.SizeBytes, 0, false), T0 + TimeSpan.FromSeconds(20));
        Assert.Empty(resyncs.ForgetStalled(T0 + TimeSpan.FromSeconds(40), TimeSpan.FromSeconds(30)));
        Assert.Equal(["s2"], resyncs.ForgetStalled(T0 + TimeSpan.FromSeconds(51), TimeSpan.FromSeconds(30)));
        Assert.Equal(ResyncCheck.NotUnderWay, resyncs.Check("s2", attempt));
        Assert.NotEqual(attempt, resyncs.Start("s2", incarnation: 2, Volume.SizeBytes, T0));
    }

    [Fact]
    public void A_guest_stop_closes_once_earlier_closes_are_answered_and_completes_at_the_checkpoint_the_primary_stopped_at()
    {
        var stop = new GuestStop();
        var pipeline = new CheckpointPipeline(1, 0, ["s1"], maxInFlight: 4, TimeSpan.FromSeconds(1));
        Assert.False(stop.ShouldClose(pipeline)); // not asked
        var first = CreateTestProbe().Ref;
        var second = CreateTestProbe().Ref;
        Assert.True(stop.Request(first));
        Assert.False(stop.Request(second));
        Assert.True(stop.ShouldClose(pipeline));

        pipeline.Close(T0);
        Assert.False(stop.ShouldClose(pipeline)); // the close of 1 is not answered yet
        pipeline.OnEpochClosed(new EpochClosed(1, 1, 0, 0));
        stop.OnEpochClosed(new EpochClosed(1, 1, 0, 0)); // it did not stop the guest
        Assert.True(stop.ShouldClose(pipeline));
        stop.OnEpochClosed(new EpochClosed(1, 2, 3, 4096, GuestStopped: true));
        Assert.Equal(2, stop.Epoch);
        Assert.False(stop.ShouldClose(pipeline));
        Assert.False(stop.CompletedBy(1));
        Assert.True(stop.CompletedBy(2));

        var (answer, requesters) = stop.Finish(1, lastCommitted: 2);
        Assert.Equal(new GuestStopped(1, 2), answer);
        Assert.Equal([first, second], requesters);
        Assert.False(stop.CompletedBy(3));
    }

    [Fact]
    public void The_failover_timeline_takes_detection_and_downing_from_cluster_events_then_rollback_and_resume()
    {
        var timeline = new FailoverTimeline();
        var node = new Address("akka.tcp", "mcactors", "127.0.0.1", 4053);
        timeline.Unreachable(node, T0);
        timeline.Unreachable(node, T0 + TimeSpan.FromSeconds(1)); // the first sighting counts
        Assert.True(timeline.IsUnreachable(node.ToString()));
        timeline.Downed(node, T0 + TimeSpan.FromSeconds(2));
        var seen = timeline.SeenLost(node.ToString());
        timeline.Removed(node, T0 + TimeSpan.FromSeconds(3));
        Assert.False(timeline.IsUnreachable(node.ToString()));

        var started = timeline.Started(2, "p", "s2", 5, seen, T0 + TimeSpan.FromSeconds(3));
        Assert.Equal((T0, T0 + TimeSpan.FromSeconds(2)), (started.DetectedAt, started.DownedAt));
        Assert.Null(timeline.Promoted(new Promoted(2, "s1", 5, 1, 1, 1, 1, T0)));
        Assert.Null(timeline.Resumed(1, T0));
        var rolledBack = timeline.Promoted(new Promoted(2, "s2", 5, 2, 10, 40960, 1.5, T0 + TimeSpan.FromSeconds(4)))!;
        Assert.Equal((2L, 10L, T0 + TimeSpan.FromSeconds(4)), (rolledBack.RolledBackEpochs, rolledBack.RolledBackBlocks, rolledBack.RolledBackAt));

        var resumed = timeline.Resumed(2, T0 + TimeSpan.FromSeconds(5))!;
        Assert.Equal(5000, FailoverTimeline.OutageMs(resumed));
        Assert.Null(timeline.Resumed(2, T0 + TimeSpan.FromSeconds(6))); // completed once
        Assert.Equal(resumed, timeline.Last);
    }

    [Fact]
    public void A_failover_whose_loss_was_not_seen_counts_from_its_decision()
    {
        var started = new FailoverTimeline().Started(2, "p", "s2", 5, (null, null), T0);
        Assert.Equal(((DateTime?)null, (DateTime?)T0, T0), (started.DetectedAt, started.DownedAt, started.PromotedAt));
    }

    [Fact]
    public void Commit_latency_runs_from_the_close_to_the_commit_and_counts_only_checkpoints_closed_here()
    {
        var commits = new CommitLatency();
        var closedAt = Stopwatch.GetTimestamp();
        commits.Closed(1, closedAt, T0);
        commits.Counted(1, 3, 12288);
        Assert.Equal((3L, 12288L), commits.CountsOf(1));
        var latency = commits.Committed(1, closedAt + Stopwatch.Frequency / 100); // 10 ms later
        Assert.Equal(10, latency!.Value.TotalMilliseconds, precision: 3);
        Assert.Equal(10, commits.Percentile(50), precision: 3);
        Assert.Equal((0L, 0L), commits.CountsOf(1));
        Assert.Null(commits.Committed(2, closedAt)); // re-driven, not closed by this coordinator

        commits.ClearPercentiles();
        Assert.Equal(0, commits.Percentile(99));
    }

    [Fact]
    public void A_Prepare_is_resent_only_once_the_resend_interval_passed_since_it_was_last_sent()
    {
        var commits = new CommitLatency();
        commits.Closed(1, Stopwatch.GetTimestamp(), T0);
        Assert.False(commits.PrepareResendDue(1, T0 + TimeSpan.FromMilliseconds(499), TimeSpan.FromMilliseconds(500)));
        Assert.True(commits.PrepareResendDue(1, T0 + TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(500)));
        Assert.False(commits.PrepareResendDue(1, T0 + TimeSpan.FromMilliseconds(900), TimeSpan.FromMilliseconds(500)));
        commits.NewGeneration();
        Assert.True(commits.PrepareResendDue(1, T0, TimeSpan.FromMilliseconds(500))); // never sent in this generation
    }
}
