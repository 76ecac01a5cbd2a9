using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>
/// A real PrimaryActor whose image disk is a <see cref="StoreFaultInjector"/> (McActorsSettings.StoreFaults),
/// a probe as the coordinator and a scripted guest: a failed write or fsync of the primary's image
/// is fatal for that primary (it reports ReplicaFailed, stops, and never releases held output).
/// </summary>
public sealed class PrimaryImageFaultTests : TestKit, IDisposable
{
    private const long VolumeSize = 8 << 20;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _dir = new("mcactors-primary-faults");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), VolumeSize, 4096);
    private readonly StoreFaultInjector _disk = new();
    private readonly TestProbe _coordinator;
    private readonly TestProbe _guest;

    public PrimaryImageFaultTests(ITestOutputHelper output) : base(Config(), output: output)
    {
        _coordinator = CreateTestProbe("coordinator");
        _guest = CreateTestProbe("guest");
    }

    // The shipped mcactors section: settings and the replica dispatcher the primary runs on.
    private static Akka.Configuration.Config Config() => Akka.Configuration.ConfigurationFactory.ParseString(
        McActorsSettings.DefaultConfig.ToString());

    /// <summary>A degraded primary (no secondary, min-replicas 0: output released on local durability) with a scripted guest.</summary>
    private (IActorRef Primary, IActorRef AsGuest) StartDegradedPrimary(TimeSpan? imageSync = null)
    {
        var settings = McActorsSettings.From(Sys.Settings.Config) with { MinReplicas = 0, StoreFaults = _disk };
        // Unless a test is about it, the background fsync stays out of the way of the one it injects a failure into.
        settings = settings with { ImageSyncInterval = imageSync ?? TimeSpan.FromHours(1) };
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _dir.Path, _coordinator.Ref, settings,
            _ => Akka.TestKit.TestActors.ForwardActor.Props(_guest.Ref)), "primary");
        primary.Tell(new AssignPrimary(1, _volume, [], LastCommitted: 0), _coordinator.Ref);
        Assert.Equal(new RoleAssumed(1, "p", ReplicaRole.Primary), _coordinator.ExpectMsg<RoleAssumed>(Patience));
        _guest.ExpectMsg<ResumeGuest>(Patience);
        var asGuest = Sys.ActorSelection(primary.Path / "guest").ResolveOne(Patience).Result;
        Watch(primary);
        return (primary, asGuest);
    }

    private static byte[] Block(byte value) => Enumerable.Repeat(value, 4096).ToArray();

    [Fact]
    public void A_failed_fsync_of_a_degraded_primarys_image_is_fatal_and_the_output_it_would_have_vouched_for_is_never_released()
    {
        var (primary, asGuest) = StartDegradedPrimary();
        primary.Tell(new GuestWrite(0, Block(1), 1), asGuest);
        _guest.ExpectMsg(new GuestWriteCompleted(1), Patience);
        var client = CreateTestProbe("client");
        primary.Tell(new ReleaseWhenCommitted("flushed"), client.Ref);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);

        // Alone, the primary makes the checkpoint durable before it reports it closed (PrimaryAloneCheckpoints).
        // That fsync fails once; on Linux the next one would succeed without the lost pages.
        _disk.FailSync(1, pathEndsWith: "volume.img");
        primary.Tell(new CloseEpoch(1, 1), _coordinator.Ref);
        _guest.ExpectMsg(new PauseGuest(1), Patience);
        primary.Tell(new GuestPaused(1), asGuest);
        _guest.ExpectMsg(new CaptureGuestState(1), Patience);
        primary.Tell(new GuestStateCaptured(1, [1, 2, 3]), asGuest);

        var failed = _coordinator.ExpectMsg<ReplicaFailed>(Patience);
        Assert.Equal((1L, "p"), (failed.Generation, failed.ReplicaId));
        Assert.Contains("keeping checkpoint 1 on the primary alone failed", failed.Reason);
        Assert.Contains("Input/output error", failed.Reason);
        ExpectTerminated(primary, Patience);
        Assert.Equal(1, _disk.Failures);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_failed_write_to_the_primarys_image_fails_the_guests_write_and_the_primary()
    {
        var (primary, asGuest) = StartDegradedPrimary();
        primary.Tell(new GuestWrite(0, Block(1), 1), asGuest);
        _guest.ExpectMsg(new GuestWriteCompleted(1), Patience);

        // A real EIO or ENOSPC may leave part of the write in the image, and none of it was streamed.
        _disk.NoSpace();
        // Sent as the probe itself: the guest child stops with the primary, before the reply would reach the probe through it.
        primary.Tell(new GuestWrite(4096, Block(2), 2), _guest.Ref);

        Assert.Contains("No space left on device", _guest.ExpectMsg<GuestWriteFailed>(Patience).Reason);
        var failed = _coordinator.ExpectMsg<ReplicaFailed>(Patience);
        Assert.Equal((1L, "p"), (failed.Generation, failed.ReplicaId));
        Assert.Contains("write of 4096 B at 4096 failed", failed.Reason);
        ExpectTerminated(primary, Patience);
    }

    [Fact]
    public void A_writeback_failure_of_the_primarys_image_that_no_checkpoint_fsyncs_is_seen_by_the_periodic_fsync_and_is_fatal()
    {
        // No epoch closes here: only the background fsync (mcactors.primary.image-sync-interval) touches the image's durability,
        // as on a primary whose secondaries hold every checkpoint.
        var (primary, asGuest) = StartDegradedPrimary(imageSync: TimeSpan.FromMilliseconds(100));
        _disk.FailSync(1, pathEndsWith: "volume.img");
        primary.Tell(new GuestWrite(0, Block(1), 1), asGuest);
        _guest.ExpectMsg(new GuestWriteCompleted(1), Patience);

        var failed = _coordinator.FishForMessage<ReplicaFailed>(_ => true, Patience);
        Assert.Equal((1L, "p"), (failed.Generation, failed.ReplicaId));
        Assert.Contains("the periodic fsync of the image failed", failed.Reason);
        Assert.Contains("Input/output error", failed.Reason);
        ExpectTerminated(primary, Patience);
        Assert.Equal(1, _disk.Failures);
    }

    [Fact]
    public void When_a_primary_stops_keeping_checkpoints_alone_after_its_store_failed_the_failure_is_fatal_not_the_queued_writes_lost()
    {
        var (primary, asGuest) = StartDegradedPrimary();
        void CloseAlone(long epoch)
        {
            primary.Tell(new CloseEpoch(1, epoch), _coordinator.Ref);
            _guest.ExpectMsg(new PauseGuest(epoch), Patience);
            primary.Tell(new GuestPaused(epoch), asGuest);
            _guest.ExpectMsg(new CaptureGuestState(epoch), Patience);
            primary.Tell(new GuestStateCaptured(epoch, [1, 2, 3]), asGuest);
            _coordinator.FishForMessage<EpochClosed>(c => c.Epoch == epoch, Patience);
            _guest.ExpectMsg(new ResumeGuest(epoch + 1), Patience);
        }
        void Write(long offset, byte value, long id)
        {
            primary.Tell(new GuestWrite(offset, Block(value), id), asGuest);
            _guest.ExpectMsg(new GuestWriteCompleted(id), Patience);
        }
        Write(0, 1, 1);
        CloseAlone(1); // the store is attached at 1
        Write(4096, 2, 2);
        CloseAlone(2);
        Write(8192, 3, 3);
        CloseAlone(3);
        Write(0, 4, 4); // epoch 4: in the store's write-ahead queue, not yet in the image file
        // Committing 2 drops epoch 2's log; the background deleter's fsync of the store's state fails first.
        _disk.FailSync(1, pathEndsWith: "store.state");
        primary.Tell(new Commit(1, 2, 0), _coordinator.Ref);
        AwaitCondition(() => _disk.Failures == 1, Patience);

        // A secondary prepared 3: the primary stops keeping checkpoints and writes its image directly again.
        primary.Tell(new Commit(1, 3, 1), _coordinator.Ref);
        var failed = _coordinator.FishForMessage<ReplicaFailed>(_ => true, Patience);
        Assert.Contains("committing checkpoint 3 on the primary alone failed", failed.Reason);
        ExpectTerminated(primary, Patience);
    }

    public new void Dispose()
    {
        base.Dispose();
        _dir.Dispose();
    }
}
