using Akka.Configuration;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Protocol;

namespace McActors.Tests.Checkpointing;

/// <summary>The coordinator's pure parts: state transitions, role planning, latency percentiles.</summary>
public sealed class CoordinatorLogicTests
{
    private static readonly VolumeSpec Volume = new(Guid.NewGuid(), 1 << 20, 4096);

    [Fact]
    public void The_coordinator_keys_have_their_documented_defaults_and_are_checked()
    {
        var settings = McActorsSettings.From(HoconFiles.Load());
        Assert.Equal(256L << 20, settings.VolumeSize);
        Assert.Equal(2, settings.Replicas);
        Assert.Equal(TimeSpan.FromSeconds(1), settings.AssignRetry);
        Assert.Equal(1000, settings.SnapshotEvery);

        var e = Assert.Throws<ConfigurationException>(() => McActorsSettings.From(HoconFiles.Load(["mcactors.volume.size = 1000"])));
        Assert.Contains("mcactors.volume.size", e.Message);
        e = Assert.Throws<ConfigurationException>(() => McActorsSettings.From(HoconFiles.Load(["mcactors.cluster.replicas = 0"])));
        Assert.Contains("mcactors.cluster.replicas", e.Message);
    }

    [Fact]
    public void Events_build_the_state_and_commits_accumulate_counters()
    {
        var state = CoordinatorState.Empty
            .Apply(new VolumeCreated(Volume))
            .Apply(new RolesAssigned(1, "a", ["b", "c"]))
            .Apply(new CheckpointCommitted(1, 1, 10, 4096))
            .Apply(new CheckpointCommitted(1, 2, 5, 512))
            .Apply(new SecondaryDropped(1, "c", 3, "slow"));

        Assert.Equal(Volume, state.Volume);
        Assert.Equal(1, state.Generation);
        Assert.Equal("a", state.Primary);
        Assert.Equal(["b"], state.Secondaries);
        Assert.Equal(2, state.LastCommitted);
        Assert.Equal(2, state.CheckpointsCommitted);
        Assert.Equal(15, state.WritesCommitted);
        Assert.Equal(4608, state.BytesCommitted);
        Assert.True(state.IsMember("a") && state.IsMember("b") && !state.IsMember("c"));
    }

    [Fact]
    public void An_old_or_other_generation_event_changes_nothing()
    {
        var state = CoordinatorState.Empty.Apply(new RolesAssigned(2, "a", ["b"])).Apply(new CheckpointCommitted(2, 5, 1, 1));

        Assert.Equal(state, state.Apply(new CheckpointCommitted(2, 4, 1, 1)));
        Assert.Equal(state, state.Apply(new CheckpointCommitted(1, 9, 1, 1)));
        Assert.Equal(state, state.Apply(new SecondaryDropped(1, "b", 3, "old")));
    }

    [Fact]
    public void Roles_wait_for_enough_replicas_and_the_first_registered_is_primary()
    {
        var a = new ReplicaCandidate("a", "h", 1, 1);
        var b = new ReplicaCandidate("b", "h", 2, 2);
        var c = new ReplicaCandidate("c", "h", 3, 3);

        Assert.Null(ReplicaSetPlanner.PlanInitial([a, b], 3, 0));
        var roles = ReplicaSetPlanner.PlanInitial([c, b, a], 3, 0)!;

        Assert.Equal(1, roles.Generation);
        Assert.Equal("a", roles.Primary);
        Assert.Equal(["b", "c"], roles.Secondaries);
    }

    [Fact]
    public void The_oldest_cluster_member_wins_over_registration_order_and_extra_replicas_stay_out()
    {
        var a = new ReplicaCandidate("a", "h", 1, 1, AgeRank: 2);
        var b = new ReplicaCandidate("b", "h", 2, 2, AgeRank: 0);
        var c = new ReplicaCandidate("c", "h", 3, 3, AgeRank: 1);

        var roles = ReplicaSetPlanner.PlanInitial([a, b, c], 2, 4)!;

        Assert.Equal(5, roles.Generation);
        Assert.Equal("b", roles.Primary);
        Assert.Equal(["c"], roles.Secondaries);
    }

    [Fact]
    public void The_membership_of_a_secondary_is_the_resync_attempt_that_made_it_one()
    {
        var state = CoordinatorState.Empty
            .Apply(new RolesAssigned(1, "a", ["b"]))
            .Apply(new SecondaryAdded(1, "c", Epoch: 2, CountsFrom: 3, ResyncAttempt: 11))
            .Apply(new SecondaryAdded(1, "d", Epoch: 2)); // written before the attempt was recorded

        Assert.Equal((0L, 11L, (long?)null), (state.MembershipOf("b"), state.MembershipOf("c"), state.MembershipOf("d")));
        // Dropped and resynced back: the new attempt is its membership now.
        Assert.Equal(12, state.Apply(new SecondaryDropped(1, "c", 4, "slow")).Apply(new SecondaryAdded(1, "c", 5, 6, 12)).MembershipOf("c"));
        // A dropped secondary the generation began with, resynced back, is a member by that attempt.
        Assert.Equal(13, state.Apply(new SecondaryDropped(1, "b", 4, "slow")).Apply(new SecondaryAdded(1, "b", 5, 6, 13)).MembershipOf("b"));
    }

    [Fact]
    public void Commit_counts_and_joins_are_recorded_and_a_new_generation_forgets_the_joins()
    {
        var state = CoordinatorState.Empty
            .Apply(new RolesAssigned(1, "a", ["b"]))
            .Apply(new CheckpointCommitted(1, 1, 1, 1, Secondaries: 1))
            .Apply(new SecondaryAdded(1, "c", Epoch: 2, CountsFrom: 3))
            .Apply(new SecondaryAdded(1, "d", Epoch: 2)); // written before CountsFrom was recorded

        Assert.Equal(new Commit(1, 1, 1), state.LastCommit()); // the count of commit 1, not today's 3
        Assert.Equal((0L, 3L, 2L), (state.CountsFrom("b"), state.CountsFrom("c"), state.CountsFrom("d")));
        Assert.Equal(5, state.Apply(new SecondaryDropped(1, "c", 2, "slow")).Apply(new SecondaryAdded(1, "c", 4, 5)).CountsFrom("c"));
        Assert.Null(CoordinatorState.Empty.Apply(new RolesAssigned(1, "a", [])).LastCommit());

        var next = state.Apply(new RolesAssigned(2, "b", ["c", "d"]));
        Assert.Equal((0L, 0L), (next.CountsFrom("c"), next.CountsFrom("d")));
        Assert.Equal(new Commit(2, 1, 1), next.LastCommit());
    }

    [Fact]
    public void A_secondary_that_joined_after_the_last_committed_checkpoint_is_no_failover_target_however_much_it_prepared()
    {
        var registered = new Dictionary<string, ReplicaCandidate> { ["b"] = new("b", "h", 1, 1), ["j"] = new("j", "h", 2, 2) };
        var prepared = new Dictionary<string, long> { ["b"] = 4, ["j"] = 6 };
        long CountsFrom(string s) => s == "j" ? 6 : 0;

        var roles = ReplicaSetPlanner.PlanFailover(["b", "j"], registered, prepared, 1, _ => null, lastCommitted: 4, CountsFrom)!;
        Assert.Equal(("b", 2L), (roles.Primary, roles.Generation));
        Assert.Empty(roles.Secondaries); // j cannot roll back to 4: it is resynced when it registers again

        Assert.Null(ReplicaSetPlanner.PlanFailover(["j"], registered, prepared, 1, _ => null, lastCommitted: 4, CountsFrom));
        // Once a checkpoint it took part in is committed, it can.
        Assert.Equal("j", ReplicaSetPlanner.PlanFailover(["b", "j"], registered, prepared, 1, _ => null, lastCommitted: 6, CountsFrom)!.Primary);
    }

    [Fact]
    public void Endpoints_list_only_registered_secondaries()
    {
        var registered = new Dictionary<string, ReplicaCandidate> { ["b"] = new("b", "10.0.0.2", 7000, 1) };

        var endpoints = ReplicaSetPlanner.Endpoints(["b", "c"], registered);

        Assert.Equal([new SecondaryEndpoint("b", "10.0.0.2", 7000)], endpoints);
    }

    [Fact]
    public void Latency_percentiles_cover_only_the_last_window()
    {
        var window = new LatencyWindow(capacity: 100);
        Assert.Equal(0, window.Percentile(50));
        for (var i = 1; i <= 200; i++)
            window.Add(TimeSpan.FromMilliseconds(i));

        Assert.Equal(100, window.Count);
        Assert.Equal(150, window.Percentile(50));
        Assert.Equal(199, window.Percentile(99));
        Assert.Equal(200, window.Percentile(100));
    }
}
