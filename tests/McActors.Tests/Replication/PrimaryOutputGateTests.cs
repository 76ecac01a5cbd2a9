using McActors.Replication;

namespace McActors.Tests.Replication;

public sealed class PrimaryOutputGateTests
{
    [Fact]
    public void Output_is_held_until_its_checkpoint_commits_and_released_in_order()
    {
        var released = new List<string>();
        var gate = new PrimaryOutputGate(committed: 2);
        gate.HoldUntilCommitted(4, () => released.Add("a4"));
        gate.HoldUntilCommitted(3, () => released.Add("b3"));
        gate.HoldUntilCommitted(4, () => released.Add("c4"));
        gate.HoldUntilCommitted(6, () => released.Add("d6"));
        Assert.Empty(released);
        Assert.Equal(4, gate.Pending);

        Assert.Equal(1, gate.Commit(3));
        Assert.Equal(["b3"], released);
        Assert.Equal(2, gate.Commit(5));
        Assert.Equal(["b3", "a4", "c4"], released);
        Assert.Equal(1, gate.Pending);
        Assert.Equal(5, gate.Committed);
    }

    [Fact]
    public void Output_of_a_committed_checkpoint_goes_at_once_and_a_late_commit_changes_nothing()
    {
        var released = 0;
        var gate = new PrimaryOutputGate(committed: 5);
        gate.HoldUntilCommitted(5, () => released++);
        Assert.Equal(1, released);
        gate.HoldUntilCommitted(6, () => released++);
        Assert.Equal(0, gate.Commit(4));
        Assert.Equal(0, gate.Commit(5));
        Assert.Equal(1, released);
        Assert.Equal(1, gate.Commit(6));
        Assert.Equal(2, released);
    }

    [Fact]
    public void Newest_held_names_the_latest_checkpoint_output_waits_for_until_none_waits()
    {
        var gate = new PrimaryOutputGate(committed: 2);
        Assert.Equal(0, gate.NewestHeld);
        gate.HoldUntilCommitted(2, () => { }); // released at once: nothing held
        Assert.Equal(0, gate.NewestHeld);
        gate.HoldUntilCommitted(4, () => { });
        gate.HoldUntilCommitted(3, () => { });
        Assert.Equal(4, gate.NewestHeld);
        gate.Commit(3);
        Assert.Equal(4, gate.NewestHeld);
        gate.Commit(4);
        Assert.Equal(0, gate.NewestHeld);
    }
}
