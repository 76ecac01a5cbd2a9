using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>A primary no secondary follows: the checkpoints it keeps alone on its disk, and an image it must not take over.</summary>
public sealed partial class PrimaryActorTests
{
    [Fact]
    public void A_primary_alone_keeps_its_checkpoints_so_that_after_it_stops_its_store_rolls_back_to_the_last_committed_one()
    {
        // No secondary: every checkpoint it commits exists on its disk only (PrimaryLost must be able to end with it).
        var primary = StartPrimary([], minReplicas: 0);
        void WritesPast(long writes) => AwaitAssert(() => Assert.True(GuestStatusOf(primary).Writes > writes + 20), Patience);
        WritesPast(0);
        Close(primary, 1, 1);
        primary.Tell(new Commit(1, 1, 0), _coordinator.Ref);
        WritesPast(Status(primary).Writes);
        Close(primary, 1, 2);
        primary.Tell(new Commit(1, 2, 0), _coordinator.Ref);
        AwaitAssert(() => Assert.Equal(2, Status(primary).LastCommitted), Patience);
        WritesPast(Status(primary).Writes);
        Close(primary, 1, 3); // prepared here, never committed: a rollback undoes it and what follows
        WritesPast(Status(primary).Writes);
        Watch(primary);
        Sys.Stop(primary);
        ExpectTerminated(primary);

        var store = PrimaryVolumeFiles.ImageDirectory(_directory);
        Assert.Equal((2L, 3L), McActors.Storage.Rollback.RollbackStore.ReadCheckpoints(store));
        var state = GuestState.Parse(File.ReadAllBytes(PrimaryVolumeFiles.StatePath(_directory, 2)));
        Assert.False(File.Exists(PrimaryVolumeFiles.StatePath(_directory, 1)), "the state of a checkpoint committed past is kept");
        using var recovered = McActors.Storage.Rollback.RollbackStore.Recover(store);
        Assert.False(GuestVerifier.Verify(state, recovered).Ok, "the image should hold writes after checkpoint 2 before the rollback");
        recovered.RollbackTo(2);
        var verification = GuestVerifier.Verify(state, recovered);
        Assert.True(verification.Ok, verification.ToString());
    }

    /// <summary>
    /// A primary alone prepares checkpoints 1..3 itself (commits 1), then s1 is resynced in and
    /// counted for checkpoint 2: 3 is still on the primary's disk only.
    /// </summary>
    private IActorRef AloneThenJoinedAtTwo(out RecordingSecondary joiner)
    {
        var primary = StartPrimary([], minReplicas: 0);
        Close(primary, 1, 1);
        primary.Tell(new Commit(1, 1, 0), _coordinator.Ref);
        WritesPast(primary, Status(primary).Writes);
        Close(primary, 1, 2);
        WritesPast(primary, Status(primary).Writes);
        Close(primary, 1, 3); // 2 and 3 prepared alone, in flight
        joiner = Secondary("s1", out var endpoint);
        primary.Tell(new AddSecondary(1, endpoint, 64 << 10, Digest: null, Attempt: 1), _coordinator.Ref);
        _coordinator.FishForMessage(m => m is ResyncCompleted { ReplicaId: "s1" }, Patience);
        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref);
        AwaitAssert(() => Assert.Equal(2, Status(primary).LastCommitted), Patience);
        return primary;
    }

    private void WritesPast(IActorRef primary, long writes) => AwaitAssert(() => Assert.True(GuestStatusOf(primary).Writes > writes + 20), Patience);

    private (long Oldest, long Newest)? StopAndReadCheckpoints(IActorRef primary)
    {
        Watch(primary);
        Sys.Stop(primary);
        ExpectTerminated(primary);
        return McActors.Storage.Rollback.RollbackStore.ReadCheckpoints(PrimaryVolumeFiles.ImageDirectory(_directory));
    }

    [Fact]
    public void A_primary_that_was_alone_keeps_the_checkpoints_only_it_prepared_until_a_commit_with_a_secondary_covers_them()
    {
        // s1 may yet be lost before it prepares 3.
        var primary = AloneThenJoinedAtTwo(out var joiner);
        var seen = joiner.Writes.Count;
        AwaitAssert(() => Assert.True(joiner.Writes.Count > seen + 20), Patience);
        Assert.Equal((2L, 3L), StopAndReadCheckpoints(primary));
    }

    [Fact]
    public void A_checkpoint_closed_while_a_secondary_followed_and_committed_after_it_was_lost_is_kept_on_the_primary()
    {
        var primary = AloneThenJoinedAtTwo(out _);
        WritesPast(primary, Status(primary).Writes);
        Close(primary, 1, 4); // s1 follows: 4 is not prepared on the primary
        // s1 is lost before it prepares 3 and 4: both commit with no secondary, 4 on this disk only.
        primary.Tell(new Commit(1, 3, 0), _coordinator.Ref);
        primary.Tell(new Commit(1, 4, 0), _coordinator.Ref);
        AwaitAssert(() => Assert.Equal(4, Status(primary).LastCommitted), Patience);
        Assert.Equal((4L, 4L), StopAndReadCheckpoints(primary));
        Assert.True(File.Exists(PrimaryVolumeFiles.StatePath(_directory, 4)), "the guest state of checkpoint 4 is kept for a promotion");
    }

    [Fact]
    public void An_image_of_another_volume_is_not_taken_over()
    {
        var other = _volume with { VolumeId = Guid.NewGuid() };
        Directory.CreateDirectory(PrimaryVolumeFiles.ImageDirectory(_directory));
        new VolumeDescriptor(other.VolumeId, other.SizeBytes, other.BlockSize).Save(PrimaryVolumeFiles.ImageDirectory(_directory));
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _directory, _coordinator.Ref, Settings(), Guest()), "primary");
        EventFilter.Exception<McActors.Storage.StoreMetadataCorruptException>().ExpectOne(
            () => primary.Tell(new AssignPrimary(1, _volume, [], 0), _coordinator.Ref));
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }
}
