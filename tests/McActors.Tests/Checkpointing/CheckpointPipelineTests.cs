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
        p.AddSecondary("s2", preparedUpTo: 0);
        p.OnEpochClosed(new EpochClosed(Gen, 11, 0, 0));
        Assert.Single(p.OnPrepared(new Prepared(Gen, 11, "s1")));
        p.Close(T0);
        p.OnEpochClosed(new EpochClosed(Gen, 12, 0, 0));
        Assert.Empty(p.OnPrepared(new Prepared(Gen, 12, "s1")));
        Assert.Equal(["s2"], p.AwaitingPrepare(12));
    }
}
