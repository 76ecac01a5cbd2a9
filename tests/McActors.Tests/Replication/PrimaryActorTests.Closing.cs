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

/// <summary>The primary's epoch closes as a guest sees them: the disk protocol, closes held by a full window, StopGuest's timing, a restore after failover.</summary>
public sealed partial class PrimaryActorTests
{
    [Fact]
    public void A_scripted_guest_sees_the_disk_protocol_and_writes_after_its_pause_wait_for_the_next_epoch()
    {
        var secondary = Secondary("s1", out var endpoint);
        var guest = CreateTestProbe("guest");
        var primary = StartPrimary([endpoint], guest: _ => Akka.TestKit.TestActors.ForwardActor.Props(guest.Ref));
        Assert.Equal(1, guest.ExpectMsg<ResumeGuest>().Epoch);
        var asGuest = GuestChild(primary);
        var data = new byte[4096];
        data.AsSpan().Fill(7);

        primary.Tell(new GuestWrite(0, data, 1), asGuest);
        guest.ExpectMsg(new GuestWriteCompleted(1));
        primary.Tell(new GuestWrite(VolumeSize, data, 2), asGuest);
        Assert.Contains("outside the volume", guest.ExpectMsg<GuestWriteFailed>(m => m.Tag == 2).Reason);
        primary.Tell(new GuestWrite(100, data, 3), asGuest);
        Assert.Contains("not aligned", guest.ExpectMsg<GuestWriteFailed>(m => m.Tag == 3).Reason);

        primary.Tell(new CloseEpoch(1, 1), _coordinator.Ref);
        guest.ExpectMsg(new PauseGuest(1));
        primary.Tell(new GuestWrite(8192, data, 4), asGuest); // issued before the pause took effect: epoch 1
        guest.ExpectMsg(new GuestWriteCompleted(4));
        primary.Tell(new GuestPaused(1), asGuest);
        guest.ExpectMsg(new CaptureGuestState(1));
        primary.Tell(new GuestWrite(4096, data, 5), asGuest); // a paused guest must not write: it waits
        guest.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        primary.Tell(new GuestStateCaptured(1, [1, 2, 3]), asGuest);
        guest.ExpectMsg(new ResumeGuest(2));
        guest.ExpectMsg(new GuestWriteCompleted(5));
        Assert.Equal(new EpochClosed(1, 1, 2, 8192), _coordinator.ExpectMsg<EpochClosed>());

        AwaitAssert(() => Assert.Equal(5, secondary.Frames.Count), Patience);
        Assert.Equal(
            [('W', 1L, 1L), ('W', 1L, 2L), ('M', 1L, 3L), ('S', 1L, 4L), ('W', 2L, 5L)],
            secondary.Frames.Select(f => (f.Kind, f.Epoch, f.Sequence)));
        Assert.Equal([1, 2, 3], secondary.States[1]);

        // A guest that refuses to pause fails the close: no EpochClosed, the failure is in the status.
        primary.Tell(new CloseEpoch(1, 2), _coordinator.Ref);
        guest.ExpectMsg(new PauseGuest(2));
        EventFilter.Error(contains: "closing epoch 2 abandoned").ExpectOne(
            () => primary.Tell(new GuestCommandRefused(new PauseGuest(2), "on fire"), asGuest));
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        var status = Status(primary);
        Assert.Contains("on fire", status.GuestFailure);
        Assert.Equal((1L, 2L), (status.LastClosed, status.Epoch));
    }

    /// <summary>
    /// A primary whose one secondary holds every frame (its gate closed) and whose 8 KiB window
    /// took write 1; write 2 is sent and waits for room. The guest is a probe; write as it through the guest child.
    /// </summary>
    private (TaskCompletionSource SecondaryGate, TestProbe Guest, IActorRef Primary, IActorRef AsGuest) StartWithOneWriteInTheWindowAndOneWaiting()
    {
        var secondary = Secondary("s1", out var endpoint);
        var gate = secondary.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var guest = CreateTestProbe("guest");
        var primary = StartPrimary([endpoint], window: 8 << 10, guest: _ => Akka.TestKit.TestActors.ForwardActor.Props(guest.Ref));
        guest.ExpectMsg<ResumeGuest>();
        var asGuest = GuestChild(primary);
        var data = new byte[4096];
        primary.Tell(new GuestWrite(0, data, 1), asGuest);
        guest.ExpectMsg(new GuestWriteCompleted(1)); // fits the window
        primary.Tell(new GuestWrite(4096, data, 2), asGuest); // the window is full: it waits
        return (gate, guest, primary, asGuest);
    }

    [Fact]
    public void A_close_waits_for_the_write_held_by_a_full_window()
    {
        var (secondaryGate, guest, primary, asGuest) = StartWithOneWriteInTheWindowAndOneWaiting();
        primary.Tell(new CloseEpoch(1, 1), _coordinator.Ref);
        guest.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // neither the completion nor the pause
        Assert.EndsWith("AwaitingSends", Status(primary).State);

        secondaryGate.SetResult();
        guest.ExpectMsg(new GuestWriteCompleted(2));
        guest.ExpectMsg(new PauseGuest(1));
        primary.Tell(new GuestPaused(1), asGuest);
        guest.ExpectMsg(new CaptureGuestState(1));
        primary.Tell(new GuestStateCaptured(1, [9]), asGuest);
        guest.ExpectMsg(new ResumeGuest(2));
        Assert.Equal(new EpochClosed(1, 1, 2, 8192), _coordinator.ExpectMsg<EpochClosed>());
    }

    [Fact]
    public void A_StopGuest_that_arrives_after_a_CloseEpoch_while_sends_wait_belongs_to_the_next_close()
    {
        var (secondaryGate, guest, primary, asGuest) = StartWithOneWriteInTheWindowAndOneWaiting();
        AwaitAssert(() => Assert.EndsWith("AwaitingSends", Status(primary).State));

        // The coordinator closed epoch 1, then asked for a stop: the stop is for the close after it.
        primary.Tell(new CloseEpoch(1, 1), _coordinator.Ref);
        primary.Tell(StopGuest.Instance, _coordinator.Ref);
        secondaryGate.SetResult();
        guest.ExpectMsg(new GuestWriteCompleted(2));
        guest.ExpectMsg(new PauseGuest(1));
        primary.Tell(new GuestPaused(1), asGuest);
        guest.ExpectMsg(new CaptureGuestState(1));
        primary.Tell(new GuestStateCaptured(1, [1]), asGuest);
        guest.ExpectMsg(new ResumeGuest(2)); // not stopped at 1
        _coordinator.ExpectMsg<EpochClosed>();

        primary.Tell(new CloseEpoch(1, 2), _coordinator.Ref);
        guest.ExpectMsg(new PauseGuest(2));
        primary.Tell(new GuestPaused(2), asGuest);
        guest.ExpectMsg(new CaptureGuestState(2));
        primary.Tell(new GuestStateCaptured(2, [2]), asGuest);
        _coordinator.ExpectMsg<EpochClosed>();
        guest.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // stopped at 2: no resume
        Assert.Equal([2], File.ReadAllBytes(PrimaryVolumeFiles.StatePath(_directory, 2)));
        Assert.False(File.Exists(PrimaryVolumeFiles.StatePath(_directory, 1)));
    }

    [Fact]
    public void A_new_primary_on_the_same_directory_restores_the_guest_from_the_committed_state()
    {
        var secondary = Secondary("s1", out var endpoint);
        var first = StartPrimary([endpoint]);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 20), Patience);
        first.Tell(StopGuest.Instance, _coordinator.Ref);
        Close(first, 1, 1);
        first.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        var statePath = PrimaryVolumeFiles.StatePath(_directory, 1);
        AwaitAssert(() => Assert.True(File.Exists(statePath)), Patience);
        var saved = GuestState.Parse(File.ReadAllBytes(statePath));
        Watch(first);
        Sys.Stop(first);
        ExpectTerminated(first);

        var second = Sys.ActorOf(PrimaryActor.Props("p", _directory, _coordinator.Ref, Settings(), Guest()), "primary-2");
        second.Tell(new AssignPrimary(2, _volume, [endpoint], LastCommitted: 1), _coordinator.Ref);
        _coordinator.ExpectMsg(new RoleAssumed(2, "p", ReplicaRole.Primary), Patience);
        AwaitAssert(() =>
        {
            var guest = GuestStatusOf(second);
            Assert.Equal(2, guest.Epoch);
            Assert.True(guest.Writes > saved.WriteCount + 10, $"guest at {guest.Writes} writes, state 1 had {saved.WriteCount}");
        }, Patience);
        AwaitAssert(() => Assert.Contains(secondary.Frames, f => f is { Kind: 'W', Generation: 2, Epoch: 2, Sequence: 1 }), Patience);
    }
}
