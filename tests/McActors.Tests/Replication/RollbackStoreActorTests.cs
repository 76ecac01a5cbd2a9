using Akka.Actor;
using Akka.TestKit.Xunit2;
using McActors.Replication;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>
/// The store actor's prepare with a <see cref="PrepareStore.Before"/> barrier: the requester's own
/// files (the guest states) are made durable while the store flushes, and the checkpoint is
/// recorded as prepared only once that barrier completed, never if it failed.
/// </summary>
public sealed class RollbackStoreActorTests : TestKit, IDisposable
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"mcactors-store-actor-{Guid.NewGuid():N}");

    public RollbackStoreActorTests(ITestOutputHelper output) : base("akka.loglevel = INFO", output)
    {
        Directory.CreateDirectory(_dir);
    }

    private (IActorRef Store, StoreGate Gate, long Incarnation) StartStore()
    {
        var gate = new StoreGate();
        var store = ChildActorOf(RollbackStoreActor.Props(_dir, VolumeDescriptor.New(1 << 20, 4096), gate, new RollbackStoreOptions()));
        var ready = ExpectMsg<StoreReady>();
        return (store, gate, ready.Incarnation);
    }

    private long PreparedOf(IActorRef store)
    {
        store.Tell(GetStoreStatus.Instance);
        return ExpectMsg<StoreStatus>().Prepared;
    }

    [Fact]
    public void A_prepare_is_recorded_only_after_its_barrier_completes()
    {
        var (store, gate, incarnation) = StartStore();
        gate.Write(incarnation, 1, 0, new byte[4096]);
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Tell(new PrepareStore(1, incarnation) { Before = barrier.Task });
        ExpectNoMsg(Quiet);
        barrier.SetResult();
        Assert.Equal(new StorePrepared(1, incarnation), ExpectMsg<StorePrepared>());
        Assert.Equal(1, PreparedOf(store));
    }

    [Fact]
    public void A_failed_barrier_leaves_the_checkpoint_unprepared_and_the_store_usable()
    {
        var (store, gate, incarnation) = StartStore();
        gate.Write(incarnation, 1, 0, new byte[4096]);
        var failed = Task.FromException(new IOException("the guest state could not be made durable"));
        store.Tell(new PrepareStore(1, incarnation) { Before = failed });
        ExpectNoMsg(Quiet);
        Assert.Equal(0, PreparedOf(store));
        // The store itself did not fail: a later prepare without a failing barrier goes through.
        store.Tell(new PrepareStore(1, incarnation) { Before = Task.CompletedTask });
        Assert.Equal(new StorePrepared(1, incarnation), ExpectMsg<StorePrepared>());
        Assert.Equal(1, PreparedOf(store));
    }

    public new void Dispose()
    {
        base.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
