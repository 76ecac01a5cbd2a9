using McActors.Replication;

namespace McActors.Tests.Replication;

/// <summary>The secondary's store-incarnation filter, without an actor.</summary>
public sealed class StoreIncarnationsTests
{
    private static StreamCheckpointReceived Checkpoint(long epoch, long incarnation, long generation = 1) =>
        new(generation, epoch, Writes: 1, Bytes: 4096, incarnation);

    [Fact]
    public void A_checkpoint_of_the_current_store_counts_and_one_of_an_older_store_is_ignored()
    {
        var stores = new StoreIncarnations();
        Assert.Null(stores.Ready(2, generation: 1));
        Assert.Equal(StreamCheckpointVerdict.Count, stores.Received(Checkpoint(5, 2)));
        Assert.Equal(StreamCheckpointVerdict.Ignore, stores.Received(Checkpoint(6, 1)));
    }

    [Fact]
    public void A_checkpoint_of_a_newer_store_is_held_and_counted_when_that_store_is_ready()
    {
        var stores = new StoreIncarnations();
        stores.Ready(1, generation: 1);
        Assert.Equal(StreamCheckpointVerdict.Hold, stores.Received(Checkpoint(7, 2)));
        Assert.Equal(StreamCheckpointVerdict.Hold, stores.Received(Checkpoint(8, 2)));
        Assert.Equal(8, stores.Ready(2, generation: 1)); // the newest held, once
        Assert.Null(stores.Ready(2, generation: 1));
    }

    [Fact]
    public void A_held_checkpoint_is_dropped_if_a_later_store_or_another_generation_comes_first()
    {
        var stores = new StoreIncarnations();
        stores.Ready(1, generation: 1);
        stores.Received(Checkpoint(7, 2));
        Assert.Null(stores.Ready(3, generation: 1)); // store 2 was reopened before its StoreReady: its writes are gone
        stores.Received(Checkpoint(9, 4));
        Assert.Null(stores.Ready(4, generation: 2)); // held for generation 1, not this one
        stores.Received(Checkpoint(10, 5));
        stores.ClearHeld();
        Assert.Null(stores.Ready(5, generation: 1));
    }
}
