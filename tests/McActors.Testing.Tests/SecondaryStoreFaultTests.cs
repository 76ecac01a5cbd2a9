using System.Net;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using McActors.Testing;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>
/// A real SecondaryActor whose store disk is a <see cref="StoreFaultInjector"/>, fed by a real
/// data-plane sender playing the primary and a probe playing the coordinator. What a disk
/// failure leads to is StoreSupervision's decision: these tests pin what actually happens.
/// </summary>
public sealed class SecondaryStoreFaultTests : TestKit, IDisposable
{
    private const long VolumeSize = 8 << 20;
    private const int BlockSize = 4096;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _dir = new("mcactors-secondary-faults");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), VolumeSize, BlockSize);
    private readonly StoreFaultInjector _disk = new();
    private readonly TestProbe _coordinator;

    public SecondaryStoreFaultTests(ITestOutputHelper output) : base("akka.loglevel = INFO", output: output) =>
        _coordinator = CreateTestProbe("coordinator");

    private McActorsSettings Settings => new McActorsSettings(
        BlockSize, WriteAheadBatchBytes: 256 << 10, EpochInterval: TimeSpan.FromSeconds(1), MaxInFlight: 4,
        PrepareTimeout: TimeSpan.FromSeconds(5), MinReplicas: 1, DataPlane: new DataPlaneOptions()) { StoreFaults = _disk };

    private IActorRef StartSecondary()
    {
        var secondary = Sys.ActorOf(SecondaryActor.Props("s1", _dir.Path, new IPEndPoint(IPAddress.Loopback, 0), _coordinator.Ref, Settings,
            onReplicaDispatcher: false), "secondary");
        secondary.Tell(new AssignSecondary(1, _volume, "p1", 0), _coordinator.Ref);
        _coordinator.ExpectMsg<RoleAssumed>(Patience);
        Watch(secondary);
        return secondary;
    }

    private SecondaryStatus Status(IActorRef secondary)
    {
        secondary.Tell(GetSecondaryStatus.Instance);
        return ExpectMsg<SecondaryStatus>();
    }

    private StoreStatus StoreStatusOf(IActorRef secondary)
    {
        Sys.ActorSelection(secondary.Path / SecondaryActor.StoreName).Tell(GetStoreStatus.Instance);
        return ExpectMsg<StoreStatus>();
    }

    private async Task<Primary> Connect(IActorRef secondary, long firstSequence, SyntheticWorkload workload)
    {
        var sender = await DataPlaneSender.ConnectAsync("127.0.0.1", Status(secondary).DataPlanePort,
            new DataPlaneVolume(_volume.VolumeId, BlockSize), generation: 1, firstSequence);
        return new Primary(sender, workload, firstSequence);
    }

    /// <summary>Checkpoint 1 prepared on a healthy disk; returns the primary, ready for epoch 2.</summary>
    private async Task<Primary> PreparedCheckpointOne(IActorRef secondary)
    {
        var primary = await Connect(secondary, 1, new SyntheticWorkload(7, VolumeSize, BlockSize));
        await primary.WriteAsync(1, 20);
        await primary.CloseAsync(1);
        secondary.Tell(new Prepare(1, 1), _coordinator.Ref);
        Assert.Equal(new Prepared(1, 1, "s1"), _coordinator.ExpectMsg<Prepared>(Patience));
        return primary;
    }

    [Fact]
    public async Task A_disk_error_restarts_the_store_which_recovers_its_prepared_checkpoint_and_the_replica_lives_on()
    {
        var secondary = StartSecondary();
        await using var primary = await PreparedCheckpointOne(secondary);

        _disk.FailAfterWrites(0);
        await primary.WriteAsync(2, 20);
        await primary.CloseAsync(2);
        secondary.Tell(new Prepare(1, 2), _coordinator.Ref);

        // StoreSupervision: an IOException is transient, restart; recovery proves the files.
        AwaitAssert(() =>
        {
            var store = StoreStatusOf(secondary);
            Assert.Equal(3, store.Incarnation); // the failure started incarnation 2 (closed), the reopen 3
            Assert.Equal(1, store.Prepared);
        }, Patience);
        Assert.True(_disk.Failures >= 1);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // neither Prepared(2) nor ReplicaFailed
        Assert.Equal(1, Status(secondary).LastPrepared);
    }

    [Fact]
    public async Task A_failed_fsync_in_a_prepare_is_never_answered_prepared_the_store_restarts_from_disk()
    {
        var secondary = StartSecondary();
        await using var primary = await PreparedCheckpointOne(secondary);
        await primary.WriteAsync(2, 20);
        await primary.CloseAsync(2);
        var before = StoreStatusOf(secondary).Incarnation;

        _disk.FailSync(1, pathEndsWith: "volume.img");
        secondary.Tell(new Prepare(1, 2), _coordinator.Ref);

        // The fsync failed once; the next would succeed, so no retry: a restart recovers checkpoint 1 from disk.
        AwaitAssert(() =>
        {
            var store = StoreStatusOf(secondary);
            Assert.True(store.Incarnation > before);
            Assert.Equal(1, store.Prepared);
            Assert.Equal([1L], store.LoggedEpochs);
        }, Patience);
        Assert.Equal(1, _disk.Failures);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // neither Prepared(2) nor ReplicaFailed
        Assert.Equal(1, Status(secondary).LastPrepared);
    }

    [Fact]
    public async Task A_disk_that_keeps_failing_exhausts_the_restarts_and_the_replica_reports_failed()
    {
        var secondary = StartSecondary();
        var primary = await PreparedCheckpointOne(secondary);
        var resumeAt = primary.NextSequence; // a restarted store is back at checkpoint 1: the stream resumes here
        var epoch2 = SyntheticWorkload.Restore(primary.Workload.Capture(1));
        _disk.FailAfterWrites(0);

        // Each round the primary streams epoch 2, the store fails on the dead disk, and StoreSupervision
        // restarts it (recovered at checkpoint 1) until MaxRestarts are used up within its window.
        for (var round = 1; round <= StoreSupervision.MaxRestarts + 1; round++)
        {
            await StreamEpochTwoUntilItBreaks(secondary, primary);
            await primary.DisposeAsync();
            if (round > StoreSupervision.MaxRestarts)
                break;
            AwaitAssert(() =>
            {
                var store = StoreStatusOf(secondary);
                Assert.Equal(2 * round + 1, store.Incarnation); // each restart: one closed incarnation, one reopened
                Assert.Equal(1, store.Prepared);
            }, Patience);
            _coordinator.ExpectNoMsg(TimeSpan.Zero);
            primary = await Connect(secondary, resumeAt, SyntheticWorkload.Restore(epoch2.Capture(1)));
        }

        var failed = _coordinator.ExpectMsg<ReplicaFailed>(Patience);
        Assert.Equal("s1", failed.ReplicaId);
        Assert.Contains("resync required", failed.Reason);
        Assert.Contains("Input/output error", failed.Reason);
        ExpectTerminated(secondary, Patience);
        Assert.Equal(StoreSupervision.MaxRestarts + 1, _disk.Failures);
    }

    /// <summary>Streams epoch 2 and asks to prepare it, until the disk has failed once more.</summary>
    private async Task StreamEpochTwoUntilItBreaks(IActorRef secondary, Primary primary)
    {
        var failures = _disk.Failures;
        try
        {
            await primary.WriteAsync(2, 20);
            await primary.CloseAsync(2);
            secondary.Tell(new Prepare(1, 2), _coordinator.Ref);
        }
        catch (DataPlaneException)
        {
            // The store failed mid-stream and the secondary closed the connection.
        }
        AwaitCondition(() => _disk.Failures > failures, Patience);
    }

    public new void Dispose()
    {
        base.Dispose();
        _dir.Dispose();
    }

    /// <summary>Plays the primary: the synthetic workload's writes, a marker and a guest state per epoch.</summary>
    private sealed class Primary(DataPlaneSender sender, SyntheticWorkload workload, long firstSequence) : IAsyncDisposable
    {
        private long _writes, _bytes;

        public SyntheticWorkload Workload { get; } = workload;
        public long NextSequence { get; private set; } = firstSequence;

        public async Task WriteAsync(long epoch, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var (write, data) = Workload.NextWrite();
                await sender.SendWriteAsync(epoch, NextSequence++, write.Offset, data);
                _writes++;
                _bytes += data.Length;
            }
        }

        public async Task CloseAsync(long epoch)
        {
            await sender.SendMarkerAsync(epoch, NextSequence++, _writes, _bytes);
            _writes = _bytes = 0;
            await sender.SendGuestStateAsync(epoch, NextSequence++, Workload.Capture(epoch));
        }

        public ValueTask DisposeAsync() => sender.DisposeAsync();
    }
}
