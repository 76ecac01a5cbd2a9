using McActors.Checkpointing;
using McActors.Protocol;

namespace McActors.Tests.Checkpointing;

public sealed class CheckpointPipelineTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);
    private const long Gen = 3;

    private static CheckpointPipeline Pipeline(int maxInFlight = 4, params string[] secondaries) =>
        new(Gen, lastCommitted: 10, secondaries.Length == 0 ? ["s1", "s2"] : secondaries, maxInFlight, Timeout);

    [Fact]
    public void A_checkpoint_commits_when_the_primary_closed_it_and_every_secondary_prepared_it()
    {
        var p = Pipeline();
        var epoch = p.Close(T0);
        Assert.Equal(11, epoch);
        Assert.Empty(p.OnPrepared(new Prepared(Gen, 11, "s1")));
        Assert.Empty(p.OnEpochClosed(new EpochClosed(Gen, 11, 5, 20480)));
        var commit = Assert.IsType<CommitCheckpoint>(Assert.Single(p.OnPrepared(new Prepared(Gen, 11, "s2"))));
        Assert.Equal(11, commit.Epoch);
        Assert.Equal(["s1", "s2"], commit.PreparedBy.Order());
        Assert.Equal(11, p.LastCommitted);
        Assert.Equal(0, p.InFlight);
    }

    [Fact]
    public void Checkpoints_commit_in_order_and_one_Prepared_covers_every_earlier_checkpoint()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.Close(T0);
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 12, 0, 0));
        p.OnEpochClosed(new EpochClosed(Gen, 13, 0, 0));
        // 11 is not closed by the primary yet: nothing may commit, not even 12 and 13.
        Assert.Empty(p.OnPrepared(new Prepared(Gen, 13, "s1")));
        var commits = p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0)).Cast<CommitCheckpoint>().Select(c => c.Epoch);
        Assert.Equal([11L, 12L, 13L], commits);
    }

    [Fact]
    public void The_pipeline_is_bounded_and_a_commit_frees_a_slot()
    {
        var p = Pipeline(2, "s1");
        p.Close(T0);
        p.Close(T0);
        Assert.False(p.CanClose);
        Assert.Throws<InvalidOperationException>(() => p.Close(T0));
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        p.OnPrepared(new Prepared(Gen, 11, "s1"));
        Assert.True(p.CanClose);
        Assert.Equal(13, p.Close(T0));
    }

    [Fact]
    public void A_slow_secondary_is_dropped_at_the_deadline_and_the_checkpoint_commits_without_it()
    {
        var p = Pipeline();
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        p.OnPrepared(new Prepared(Gen, 11, "s1"));
        Assert.Empty(p.OnTick(T0 + Timeout - TimeSpan.FromMilliseconds(1)));
        var decisions = p.OnTick(T0 + Timeout);
        Assert.Equal(new DropSecondary("s2", 11, "no Prepared(11) within 2000 ms"), decisions[0]);
        Assert.Equal(11, Assert.IsType<CommitCheckpoint>(decisions[1]).Epoch);
        Assert.Equal(["s1"], p.Secondaries);
    }

    [Fact]
    public void A_lost_Prepared_is_covered_by_a_later_one()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        p.OnEpochClosed(new EpochClosed(Gen, 12, 0, 0));
        // Prepared(11) was lost; Prepared(12) means everything up to 12 is durable.
        var commits = p.OnPrepared(new Prepared(Gen, 12, "s1")).Cast<CommitCheckpoint>().Select(c => c.Epoch);
        Assert.Equal([11L, 12L], commits);
    }

    [Fact]
    public void Messages_of_another_generation_late_or_from_strangers_change_nothing()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        Assert.Empty(p.OnPrepared(new Prepared(Gen - 1, 11, "s1")));
        Assert.Empty(p.OnPrepared(new Prepared(Gen + 1, 11, "s1")));
        Assert.Empty(p.OnPrepared(new Prepared(Gen, 11, "stranger")));
        Assert.Empty(p.OnEpochClosed(new EpochClosed(Gen - 1, 12, 0, 0)));
        Assert.Single(p.OnPrepared(new Prepared(Gen, 11, "s1")));
        Assert.Empty(p.OnPrepared(new Prepared(Gen, 11, "s1"))); // duplicate: already committed
    }

    [Fact]
    public void Losing_the_last_secondary_commits_on_the_primary_alone()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        Assert.Equal(11, Assert.IsType<CommitCheckpoint>(Assert.Single(p.RemoveSecondary("s1"))).Epoch);
        p.Close(T0);
        Assert.Single(p.OnEpochClosed(new EpochClosed(Gen, 12, 0, 0)));
    }

    [Fact]
    public void A_joining_secondary_is_waited_for_only_from_the_next_checkpoint()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.AddSecondary("s2", p.JoinEpoch(fromEpoch: 11));
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        Assert.Equal(["s1"], Assert.IsType<CommitCheckpoint>(Assert.Single(p.OnPrepared(new Prepared(Gen, 11, "s1")))).PreparedBy);
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 12, 0, 0));
        Assert.Empty(p.OnPrepared(new Prepared(Gen, 12, "s1")));
        Assert.Equal(["s2"], p.AwaitingPrepare(12));
    }

    [Fact]
    public void A_secondary_that_joins_before_the_primary_closed_an_open_checkpoint_does_not_count_for_it()
    {
        // Degraded: no secondary. The primary reports "in sync from 11" before it has closed 11,
        // which the coordinator had already opened (Prepare(11) went to nobody).
        var p = new CheckpointPipeline(Gen, lastCommitted: 10, [], maxInFlight: 4, Timeout);
        Assert.Equal(11, p.Close(T0));
        Assert.Equal(12, p.JoinEpoch(fromEpoch: 11));
        p.AddSecondary("j", p.JoinEpoch(fromEpoch: 11));
        Assert.Empty(p.AwaitingPrepare(11));
        Assert.Empty(p.TakingPart(11));

        // 11 commits on the primary alone: j never prepared it and must not be counted (min-replicas, fsync).
        var commit = Assert.IsType<CommitCheckpoint>(Assert.Single(p.OnEpochClosed(new EpochClosed(Gen, 11, 1, 4096))));
        Assert.Equal(11, commit.Epoch);
        Assert.Empty(commit.PreparedBy);

        // From 12 on it takes part: 12 waits for it, and then counts it.
        Assert.Equal(12, p.Close(T0));
        Assert.Equal(["j"], p.TakingPart(12));
        Assert.Empty(p.OnEpochClosed(new EpochClosed(Gen, 12, 1, 4096)));
        Assert.Equal(["j"], p.AwaitingPrepare(12));
        commit = Assert.IsType<CommitCheckpoint>(Assert.Single(p.OnPrepared(new Prepared(Gen, 12, "j"))));
        Assert.Equal(12, commit.Epoch);
        Assert.Equal(["j"], commit.PreparedBy);
    }

    [Fact]
    public void Checkpoints_open_when_a_secondary_joins_commit_with_those_that_prepared_them_only()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        p.AddSecondary("j", p.JoinEpoch(fromEpoch: 11));
        Assert.Equal(13, p.Close(T0));
        p.OnEpochClosed(new EpochClosed(Gen, 12, 0, 0));
        p.OnEpochClosed(new EpochClosed(Gen, 13, 0, 0));

        var commits = p.OnPrepared(new Prepared(Gen, 13, "s1")).Cast<CommitCheckpoint>().ToList();
        Assert.Equal([(11L, 1), (12L, 1)], commits.Select(c => (c.Epoch, c.PreparedBy.Count)));
        Assert.All(commits, c => Assert.Equal(["s1"], c.PreparedBy));
        var last = Assert.IsType<CommitCheckpoint>(Assert.Single(p.OnPrepared(new Prepared(Gen, 13, "j"))));
        Assert.Equal(["j", "s1"], last.PreparedBy.Order());
    }

    [Fact]
    public void JoinEpoch_is_the_first_checkpoint_opened_after_the_join_and_never_one_before_the_sync_point()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        p.Close(T0);
        Assert.Equal(13, p.JoinEpoch(fromEpoch: 12)); // 11 and 12 are open: Prepare went out without it
        Assert.Equal(15, p.JoinEpoch(fromEpoch: 15)); // a recovered coordinator re-drives older ones
    }

    [Fact]
    public void A_rebuilt_pipeline_waits_for_a_joined_secondary_only_from_its_recorded_checkpoint()
    {
        // A recovered coordinator re-drives 11.. while j joined for 13 on.
        var p = new CheckpointPipeline(Gen, lastCommitted: 10, ["s1", "j"], maxInFlight: 4, Timeout, [new SecondaryJoin("j", 13)]);
        p.Close(T0);
        Assert.Equal(["s1"], p.TakingPart(11));
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        Assert.Equal(["s1"], Assert.IsType<CommitCheckpoint>(Assert.Single(p.OnPrepared(new Prepared(Gen, 11, "s1")))).PreparedBy);
        p.Close(T0);
        p.Close(T0);
        Assert.Equal(["j", "s1"], p.TakingPart(13).Order());
    }

    [Fact]
    public void A_clone_is_independent_and_describes_the_same_state()
    {
        var p = Pipeline(4, "s1");
        p.Close(T0);
        var copy = p.Clone();
        Assert.Equal(p.ToString(), copy.ToString());
        copy.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        Assert.Single(copy.OnPrepared(new Prepared(Gen, 11, "s1")));
        Assert.Equal((10L, 1), (p.LastCommitted, p.InFlight));
        Assert.NotEqual(p.ToString(), copy.ToString());
    }
}
