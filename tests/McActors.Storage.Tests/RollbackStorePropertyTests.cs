using McActors.Storage.Rollback;
using Xunit.Abstractions;
using McActors.Storage.Tests.Support;

namespace McActors.Storage.Tests;

/// <summary>
/// The store against its reference model over random operation sequences: after every rollback
/// the image equals the model's image at that checkpoint, byte for byte.
/// </summary>
public sealed class RollbackStorePropertyTests(ITestOutputHelper output)
{
    private const int Sequences = 520;

    [Fact]
    public void Every_rollback_yields_the_checkpoint_image()
    {
        var rollbacks = 0;
        Seeds.Run(Sequences, seed =>
        {
            var random = new Random(seed);
            using var dir = new TempDirectory("prop");
            var descriptor = RandomOperations.RandomVolume(random, out var options);
            var model = new ReferenceVolume((int)descriptor.SizeBytes);
            var ops = new RandomOperations(random, model, (int)descriptor.SizeBytes);
            using var store = RollbackStore.Create(dir.Path, descriptor, options);
            var steps = random.Next(20, 90);
            for (var i = 0; i < steps; i++)
                ops.Step(store);
            // Every sequence ends in a rollback, so every one of them is checked at least once.
            ops.Rollback(store, random);
            rollbacks += ops.Rollbacks;
        }, output);
        Assert.True(rollbacks >= Sequences || Environment.GetEnvironmentVariable(Seeds.Variable) is not null,
            $"only {rollbacks} rollbacks were checked");
    }

    [Fact]
    public void A_store_reopened_after_a_clean_stop_goes_on_where_it_was()
    {
        Seeds.Run(60, seed =>
        {
            var random = new Random(seed);
            using var dir = new TempDirectory("reopen");
            var descriptor = RandomOperations.RandomVolume(random, out var options);
            var model = new ReferenceVolume((int)descriptor.SizeBytes);
            var ops = new RandomOperations(random, model, (int)descriptor.SizeBytes);
            var store = RollbackStore.Create(dir.Path, descriptor, options);
            for (var round = 0; round < 3; round++)
            {
                for (var i = random.Next(10, 40); i > 0; i--)
                    ops.Step(store);
                store.Dispose();
                store = RollbackStore.Recover(dir.Path, options);
                Assert.Equal(model.Committed, store.CommittedEpoch);
                Assert.Equal(model.Prepared, store.PreparedEpoch);
                RandomOperations.AssertImage(store, model.Current, "after reopening");
            }
            ops.Rollback(store, random);
            store.Dispose();
        }, output);
    }
}
