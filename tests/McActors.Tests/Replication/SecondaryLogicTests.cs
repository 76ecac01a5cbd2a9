using Akka.Actor;
using McActors.Replication;
using McActors.Storage;

namespace McActors.Tests.Replication;

/// <summary>The secondary's pure logic: the store supervisor's decider, store alignment, checkpoint bookkeeping.</summary>
public sealed class SecondaryLogicTests
{
    [Fact]
    public void Disk_and_storage_errors_restart_the_store()
    {
        Assert.Equal(Directive.Restart, StoreSupervision.Decide(new IOException("EIO")));
        Assert.Equal(Directive.Restart, StoreSupervision.Decide(new StorageException("failed earlier")));
        Assert.Equal(Directive.Restart, StoreSupervision.Decide(new InvalidOperationException("surprise")));
    }

    [Fact]
    public void A_store_that_cannot_vouch_or_a_broken_epoch_protocol_stops_the_store()
    {
        Assert.Equal(Directive.Stop, StoreSupervision.Decide(new CannotVouchException("/x", "damaged")));
        Assert.Equal(Directive.Stop, StoreSupervision.Decide(new RollbackLogChecksumException("/x", 4096, "bad")));
        Assert.Equal(Directive.Stop, StoreSupervision.Decide(new EpochOrderException("commit of unprepared")));
        Assert.Equal(Directive.Stop, StoreSupervision.Decide(new CheckpointUnavailableException(1, 2, 3, "gone")));
    }

    [Fact]
    public void A_failure_to_open_the_store_is_judged_by_its_cause()
    {
        var self = ActorRefs.Nobody;
        Assert.Equal(Directive.Stop, StoreSupervision.Decide(new ActorInitializationException(self, "init", new StoreMetadataCorruptException("/x", "missing"))));
        Assert.Equal(Directive.Restart, StoreSupervision.Decide(new ActorInitializationException(self, "init", new IOException("EIO"))));
    }

    [Theory]
    [InlineData(0, 0, 0, null, null)]
    [InlineData(3, 3, 3, null, null)]
    [InlineData(3, 5, 3, 3L, null)]
    [InlineData(2, 5, 3, 3L, 3L)]
    [InlineData(2, 3, 3, null, 3L)]
    public void Alignment_rolls_back_and_commits_to_the_clusters_checkpoint(long committed, long prepared, long target, long? rollback, long? commit)
    {
        var plan = StoreAlignment.Plan(committed, prepared, target);
        Assert.Null(plan.ResyncReason);
        Assert.Equal(rollback, plan.RollbackTo);
        Assert.Equal(commit, plan.CommitTo);
        Assert.Equal(rollback is null && commit is null, plan.Ready);
    }

    [Theory]
    [InlineData(3, 3, 3, 4, 3L)] // the old primary's open epoch 4 reached the image: undo it
    [InlineData(3, 3, 3, 3, null)]
    [InlineData(2, 3, 3, 5, 3L)]
    public void Alignment_undoes_writes_of_an_unprepared_epoch_after_the_checkpoint(long committed, long prepared, long target, long newestLogged, long? rollback)
    {
        var plan = StoreAlignment.Plan(committed, prepared, target, newestLogged);
        Assert.Null(plan.ResyncReason);
        Assert.Equal(rollback, plan.RollbackTo);
    }

    [Theory]
    [InlineData(4, 5, 3, "committed checkpoint 4")]
    [InlineData(0, 2, 3, "prepared only up to checkpoint 2")]
    [InlineData(0, 0, 1, "prepared only up to checkpoint 0")]
    public void Alignment_asks_for_a_resync_when_the_store_cannot_reach_the_checkpoint(long committed, long prepared, long target, string reason)
    {
        var plan = StoreAlignment.Plan(committed, prepared, target);
        Assert.Contains(reason, plan.ResyncReason);
        Assert.False(plan.Ready);
    }

    [Fact]
    public void A_prepare_that_outruns_the_stream_waits_for_its_checkpoint()
    {
        var c = new SecondaryCheckpoints(0, 0);
        Assert.False(c.Request(1));
        Assert.Null(c.NextPrepare());
        c.CheckpointReceived(1);
        Assert.Equal(1, c.NextPrepare());
        Assert.Null(c.NextPrepare()); // one store prepare in flight
        Assert.Equal([1L], c.StorePrepared(1));
        Assert.Equal(1, c.Prepared);
        Assert.Empty(c.Waiting);
    }

    [Fact]
    public void A_repeated_or_older_prepare_is_answered_at_once()
    {
        var c = new SecondaryCheckpoints(0, 3);
        Assert.True(c.Request(3));
        Assert.True(c.Request(2));
        Assert.Empty(c.Waiting);
    }

    [Fact]
    public void One_store_prepare_covers_every_waiting_request_up_to_it()
    {
        var c = new SecondaryCheckpoints(0, 0);
        c.Request(1);
        c.Request(2);
        c.Request(1); // repeated while waiting: answered again
        c.CheckpointReceived(1);
        c.CheckpointReceived(2);
        Assert.Equal(2, c.NextPrepare());
        Assert.Equal([1L, 2L, 1L], c.StorePrepared(2));
    }

    [Fact]
    public void A_request_arriving_during_a_store_prepare_is_prepared_next()
    {
        var c = new SecondaryCheckpoints(0, 0);
        c.Request(1);
        c.CheckpointReceived(2);
        Assert.Equal(1, c.NextPrepare());
        c.Request(2);
        Assert.Null(c.NextPrepare());
        Assert.Equal([1L], c.StorePrepared(1));
        Assert.Equal(2, c.NextPrepare());
        Assert.Equal([2L], c.StorePrepared(2));
    }

    [Fact]
    public void A_reopened_store_forgets_what_the_stream_delivered_after_its_checkpoint()
    {
        var c = new SecondaryCheckpoints(0, 0);
        c.CheckpointReceived(2);
        c.Request(2);
        Assert.Equal(2, c.NextPrepare());
        c.Reset(0, 1); // restart: the store is at 1, the prepare of 2 was dropped
        Assert.Null(c.Preparing);
        Assert.Equal(1, c.Received);
        Assert.Null(c.NextPrepare()); // waits for checkpoint 2 to be streamed again
        Assert.Equal([2L], c.Waiting);
        c.CheckpointReceived(2);
        Assert.Equal(2, c.NextPrepare());
    }

    [Fact]
    public void Commits_are_idempotent_and_only_of_prepared_checkpoints()
    {
        var c = new SecondaryCheckpoints(1, 3);
        Assert.Equal(CommitDecision.AlreadyCommitted, c.Commit(1));
        Assert.Equal(CommitDecision.AlreadyCommitted, c.Commit(0));
        Assert.Equal(CommitDecision.NotPrepared, c.Commit(4));
        Assert.Equal(CommitDecision.Apply, c.Commit(3));
        c.StoreCommitted(3);
        Assert.Equal(CommitDecision.AlreadyCommitted, c.Commit(3));
    }
}
