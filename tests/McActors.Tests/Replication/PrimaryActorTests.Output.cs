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

/// <summary>The primary's output gate and reads: held output released by commits under min-replicas, a stopped guest's checkpoint, reads from the live image.</summary>
public sealed partial class PrimaryActorTests
{
    [Fact]
    public void A_stopped_guest_stays_paused_and_its_committed_checkpoint_verifies_on_the_image()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint]);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 20), Patience);
        Assert.False(Close(primary, 1, 1).GuestStopped);
        AwaitAssert(() => Assert.Contains(secondary.Frames, f => f is { Kind: 'W', Epoch: 2 }), Patience);

        primary.Tell(StopGuest.Instance, _coordinator.Ref);
        // A repeated close of a checkpoint closed before the StopGuest did not stop the guest; the next close does.
        Assert.False(Close(primary, 1, 1).GuestStopped);
        var last = Close(primary, 1, 2);
        Assert.Equal(2, last.Epoch);
        Assert.True(last.GuestStopped);
        Assert.True(Close(primary, 1, 2).GuestStopped); // and says so again when repeated
        AwaitAssert(() =>
        {
            var guest = GuestStatusOf(primary);
            Assert.True(guest.Paused);
            Assert.Equal(0, guest.Outstanding);
        }, Patience);
        var writes = GuestStatusOf(primary).Writes;
        Assert.True(Status(primary).GuestStopped);
        Assert.DoesNotContain(secondary.Frames, f => f.Epoch == 3);

        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref);
        var statePath = PrimaryVolumeFiles.StatePath(_directory, 2);
        AwaitAssert(() => Assert.True(File.Exists(statePath)), Patience);
        Assert.Equal(2, Status(primary).LastCommitted);
        Assert.Equal(writes, GuestStatusOf(primary).Writes);

        // Offline, as the demo does: the image holds exactly what state 2 says, and so does the secondary's copy.
        Watch(primary);
        Sys.Stop(primary);
        ExpectTerminated(primary);
        var blob = File.ReadAllBytes(statePath);
        var state = GuestState.Parse(blob);
        Assert.Equal(writes, state.WriteCount);
        Assert.Equal(blob, secondary.States[2]);
        using var image = VolumeImage.Open(PrimaryVolumeFiles.ImagePath(_directory), VolumeSize, writable: false);
        var verification = GuestVerifier.Verify(state, image);
        Assert.True(verification.Ok, verification.ToString());
        var copy = new byte[VolumeSize];
        image.Read(0, copy);
        Assert.True(copy.AsSpan().SequenceEqual(secondary.Image), "the secondary's copy differs from the primary's image");
    }

    [Fact]
    public void Output_held_until_committed_is_released_by_the_commit_of_its_checkpoint()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint]);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 5), Patience);

        var client = CreateTestProbe();
        primary.Tell(new ReleaseWhenCommitted("flushed"), client.Ref);
        // The open epoch holds writes: the primary asks the coordinator to close it at once.
        _coordinator.ExpectMsg<CheckpointNow>(c => Assert.Equal(1, c.Generation), Patience);
        Close(primary, 1, 1);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        primary.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        client.ExpectMsg("flushed");
        Assert.Equal(1, Status(primary).LastCommitted);
    }

    [Fact]
    public void Output_of_a_checkpoint_committed_on_fewer_secondaries_than_min_replicas_waits_for_a_commit_that_has_them()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint], minReplicas: 1);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 5), Patience);

        var client = CreateTestProbe();
        primary.Tell(new ReleaseWhenCommitted("flushed"), client.Ref);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Close(primary, 1, 1);
        // Committed, but with the set down to the primary alone: the FLUSH reply would promise a copy nobody has.
        EventFilter.Warning(contains: "min-replicas is 1").ExpectOne(() => primary.Tell(new Commit(1, 1, 0), _coordinator.Ref));
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Equal(1, Status(primary).LastCommitted);

        // A later checkpoint committed on a secondary again (after a re-protection) covers it.
        Close(primary, 1, 2);
        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref);
        client.ExpectMsg("flushed");
    }

    [Fact]
    public void With_min_replicas_0_a_degraded_primary_releases_output_at_commit_on_local_durability()
    {
        var primary = StartPrimary([], minReplicas: 0);
        var client = CreateTestProbe();
        AwaitAssert(() => Assert.True(Status(primary).Writes > 0), Patience);
        primary.Tell(new ReleaseWhenCommitted("flushed"), client.Ref);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Close(primary, 1, 1);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        primary.Tell(new Commit(1, 1, 0), _coordinator.Ref);
        client.ExpectMsg("flushed");
    }

    [Fact]
    public void Guest_reads_are_served_from_the_live_image_and_bad_ones_refused()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint]);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 5), Patience);

        var reader = CreateTestProbe();
        primary.Tell(new GuestRead(0, (int)VolumeSize, 1), reader.Ref);
        var read = reader.ExpectMsg<GuestReadCompleted>(Patience);
        Assert.Equal((1L, (int)VolumeSize), (read.Tag, read.Data.Length));
        Assert.Contains(read.Data, b => b != 0); // the guest's writes are there
        primary.Tell(new GuestRead(VolumeSize - 512, 1024, 2), reader.Ref);
        Assert.Equal(2, reader.ExpectMsg<GuestReadFailed>(Patience).Tag);
        primary.Tell(new GuestRead(100, 512, 3), reader.Ref);
        Assert.Equal(3, reader.ExpectMsg<GuestReadFailed>(Patience).Tag);
    }
}
