using McActors.Replication;

namespace McActors.Tests.Replication;

public sealed class PrimaryEpochLedgerTests
{
    [Fact]
    public void A_new_ledger_resumes_after_the_last_committed_checkpoint()
    {
        var ledger = new PrimaryEpochLedger(generation: 3, lastCommitted: 7);
        Assert.Equal(8, ledger.Epoch);
        Assert.Equal(7, ledger.LastClosed);
        Assert.Equal(7, ledger.LastCommitted);
        Assert.Equal(1, ledger.NextSequence);
    }

    [Fact]
    public void Writes_markers_and_states_take_consecutive_sequences_and_epochs_advance_at_the_marker()
    {
        var ledger = new PrimaryEpochLedger(1, 0);
        Assert.Equal(1, ledger.RecordWrite(4096));
        Assert.Equal(2, ledger.RecordWrite(512));
        var closed = ledger.CloseEpoch();
        Assert.Equal(new ClosedCheckpoint(1, 2, 4608, 3), closed);
        Assert.Equal(2, ledger.Epoch);
        Assert.Equal(0, ledger.WritesInEpoch);
        Assert.Equal(4, ledger.AttachState(1, [1, 2, 3]));
        Assert.Equal(5, ledger.RecordWrite(4096));
        Assert.Equal(3, ledger.TotalWrites);
        Assert.Equal(8704, ledger.TotalBytes);
        Assert.Equal([1, 2, 3], ledger.Find(1)!.State);
    }

    [Fact]
    public void Closes_are_classified_against_the_last_closed_epoch()
    {
        var ledger = new PrimaryEpochLedger(1, 4);
        Assert.Equal(CloseRequest.Repeat, ledger.Classify(4));
        Assert.Equal(CloseRequest.Next, ledger.Classify(5));
        Assert.Equal(CloseRequest.OutOfOrder, ledger.Classify(6));
        ledger.CloseEpoch();
        Assert.Equal(CloseRequest.Repeat, ledger.Classify(5));
        Assert.Equal(CloseRequest.Next, ledger.Classify(6));
    }

    [Fact]
    public void Fencing_compares_generations()
    {
        var ledger = new PrimaryEpochLedger(5, 0);
        Assert.Equal(FenceVerdict.Current, ledger.Fence(5));
        Assert.Equal(FenceVerdict.Stale, ledger.Fence(4));
        Assert.Equal(FenceVerdict.Newer, ledger.Fence(6));
    }

    [Fact]
    public void A_commit_keeps_only_checkpoints_from_the_committed_one_on()
    {
        var ledger = new PrimaryEpochLedger(1, 0);
        for (var e = 1; e <= 4; e++)
        {
            ledger.RecordWrite(512);
            ledger.CloseEpoch();
            ledger.AttachState(e, [(byte)e]);
        }
        Assert.Equal(CommitOutcome.Advanced, ledger.Commit(3));
        Assert.Equal([3L, 4L], ledger.HeldCheckpoints);
        Assert.Null(ledger.Find(2));
        Assert.Equal(CommitOutcome.AlreadyCommitted, ledger.Commit(2));
        Assert.Equal(CommitOutcome.AlreadyCommitted, ledger.Commit(3));
        Assert.Equal(CommitOutcome.NotClosedYet, ledger.Commit(5));
        Assert.Equal(3, ledger.LastCommitted);
    }

    [Fact]
    public void A_state_is_attached_once_and_only_to_a_held_checkpoint()
    {
        var ledger = new PrimaryEpochLedger(1, 0);
        Assert.Throws<InvalidOperationException>(() => ledger.AttachState(1, []));
        ledger.CloseEpoch();
        ledger.AttachState(1, []);
        Assert.Throws<InvalidOperationException>(() => ledger.AttachState(1, []));
    }
}
