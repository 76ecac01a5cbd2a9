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

/// <summary>
/// The primary end to end on one machine: a real data-plane listener with a recording handler as
/// the secondary, a probe as the coordinator, the real synthetic guest as the workload.
/// </summary>
public sealed class PrimaryActorTests : TestKit, IAsyncLifetime
{
    private const long VolumeSize = 8 << 20;
    private const long Seed = 42;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mcactors-primary-{Guid.NewGuid():N}");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), VolumeSize, 4096);
    private readonly List<DataPlaneListener> _listeners = [];
    private readonly TestProbe _coordinator;

    public PrimaryActorTests(ITestOutputHelper output) : base(Config(), output: output)
    {
        Directory.CreateDirectory(_directory);
        _coordinator = CreateTestProbe("coordinator");
    }

    // The shipped mcactors section: settings and the replica dispatcher the primary runs on.
    private static Config Config() =>
        McActorsSettings.DefaultConfig;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        Shutdown(); // stops the primary first: its senders close before the listeners go
        foreach (var listener in _listeners)
            await listener.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private McActorsSettings Settings(long? window = null, TimeSpan? stall = null, int? minReplicas = null)
    {
        var settings = McActorsSettings.From(Sys.Settings.Config);
        if (minReplicas is not null)
            settings = settings with { MinReplicas = minReplicas.Value };
        if (window is not null)
            settings = settings with { DataPlane = settings.DataPlane with { WindowBytes = window.Value } };
        // The prepare timeout is also how long the primary waits on a full window before dropping that secondary.
        return settings with { PrepareTimeout = stall ?? TimeSpan.FromSeconds(30) };
    }

    private RecordingSecondary Secondary(string id, out SecondaryEndpoint endpoint)
    {
        var handler = new RecordingSecondary(VolumeSize);
        var listener = new DataPlaneListener(new IPEndPoint(IPAddress.Loopback, 0), new DataPlaneVolume(_volume.VolumeId, _volume.BlockSize), handler).Start();
        _listeners.Add(listener);
        endpoint = new SecondaryEndpoint(id, "127.0.0.1", listener.Port);
        return handler;
    }

    private static Func<GuestContext, Props> Guest(int window = 4, long? limit = null) =>
        guest => SyntheticGuestActor.Props(guest, new SyntheticGuestOptions(Seed, VolumeSize, MaxOutstanding: window, WriteLimit: limit));

    private IActorRef StartPrimary(IReadOnlyList<SecondaryEndpoint> secondaries, long generation = 1, long? window = null,
        Func<GuestContext, Props>? guest = null, TimeSpan? stall = null, int? minReplicas = null)
    {
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _directory, _coordinator.Ref, Settings(window, stall, minReplicas), guest ?? Guest()), "primary");
        primary.Tell(new AssignPrimary(generation, _volume, secondaries, LastCommitted: 0), _coordinator.Ref);
        var assumed = _coordinator.ExpectMsg<RoleAssumed>(Patience);
        Assert.Equal(new RoleAssumed(generation, "p", ReplicaRole.Primary), assumed);
        return primary;
    }

    private PrimaryStatus Status(IActorRef primary)
    {
        primary.Tell(GetPrimaryStatus.Instance, TestActor);
        return ExpectMsg<PrimaryStatus>();
    }

    private GuestStatus GuestStatusOf(IActorRef primary)
    {
        var guest = Sys.ActorSelection(primary.Path / "guest").ResolveOne(Patience).Result;
        guest.Tell(GetGuestStatus.Instance, TestActor);
        return ExpectMsg<GuestStatus>();
    }

    /// <summary>The guest child: a scripted guest's messages are sent as it, so the answers come back through it in order.</summary>
    private IActorRef GuestChild(IActorRef primary) => Sys.ActorSelection(primary.Path / "guest").ResolveOne(Patience).Result;

    private EpochClosed Close(IActorRef primary, long generation, long epoch)
    {
        primary.Tell(new CloseEpoch(generation, epoch), _coordinator.Ref);
        return _coordinator.ExpectMsg<EpochClosed>(Patience);
    }

    [Fact]
    public void An_assigned_primary_runs_the_guest_and_streams_its_writes_in_sequence_order()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint]);

        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 50), Patience);
        var frames = secondary.Frames;
        Assert.Equal(Enumerable.Range(1, frames.Count).Select(i => (long)i), frames.Select(f => f.Sequence));
        Assert.All(frames, f => Assert.Equal(('W', 1L, 1L), (f.Kind, f.Generation, f.Epoch)));
        Assert.True(File.Exists(Path.Combine(_directory, "store", "volume.img")));
        Assert.Equal(_volume.VolumeId, VolumeDescriptor.Load(PrimaryVolumeFiles.ImageDirectory(_directory)).VolumeId);

        var status = Status(primary);
        Assert.Equal(["s1"], status.ConnectedSecondaries);
        Assert.False(status.Degraded);
        Assert.Equal(1, status.Epoch);
        Assert.True(status.Writes >= 50);
    }

    [Fact]
    public void Closing_an_epoch_streams_its_writes_then_marker_then_state_and_later_writes_belong_to_the_next()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint], generation: 2);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 20), Patience);

        var closed = Close(primary, 2, 1);
        Assert.Equal(2, closed.Generation);
        Assert.Equal(1, closed.Epoch);
        AwaitAssert(() => Assert.Contains(secondary.Frames, f => f is { Kind: 'W', Epoch: 2 }), Patience);

        var frames = secondary.Frames;
        Assert.Equal(Enumerable.Range(1, frames.Count).Select(i => (long)i), frames.Select(f => f.Sequence));
        var marker = frames.FindIndex(f => f.Kind == 'M');
        var epoch1 = frames[..marker];
        Assert.All(epoch1, f => Assert.Equal(('W', 1L), (f.Kind, f.Epoch)));
        Assert.Equal(('M', 1L, closed.Writes, closed.Bytes), (frames[marker].Kind, frames[marker].Epoch, frames[marker].Writes, frames[marker].Bytes));
        Assert.Equal(epoch1.Count, closed.Writes);
        Assert.Equal(epoch1.Sum(f => (long)f.Length), closed.Bytes);
        Assert.Equal(('S', 1L), (frames[marker + 1].Kind, frames[marker + 1].Epoch));
        Assert.Equal(1, GuestState.Parse(secondary.States[1]).Epoch);
        Assert.All(frames[(marker + 2)..], f => Assert.Equal(('W', 2L, 2L), (f.Kind, f.Epoch, f.Generation)));

        // A recovered coordinator re-drives: the same answer, nothing streamed again.
        Assert.Equal(closed, Close(primary, 2, 1));
        Assert.Single(secondary.Frames, f => f.Kind == 'M');

        // A close that skips an epoch is ignored.
        EventFilter.Warning(contains: "out of order").ExpectOne(() => primary.Tell(new CloseEpoch(2, 3), _coordinator.Ref));
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(100));

        var second = Close(primary, 2, 2);
        Assert.Equal(2, second.Epoch);
        Assert.Equal(2, Status(primary).LastClosed);
    }

    [Fact]
    public void Messages_of_an_older_generation_are_refused_and_change_nothing()
    {
        Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint], generation: 3);

        primary.Tell(new CloseEpoch(2, 1), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(3, 2, nameof(CloseEpoch)), _coordinator.ExpectMsg<StaleGeneration>());
        primary.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(3, 1, nameof(Commit)), _coordinator.ExpectMsg<StaleGeneration>());
        primary.Tell(new AssignPrimary(2, _volume, [], 0), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(3, 2, nameof(AssignPrimary)), _coordinator.ExpectMsg<StaleGeneration>());

        var status = Status(primary);
        Assert.Equal((3L, 0L, 0L, 1L), (status.Generation, status.LastClosed, status.LastCommitted, status.Epoch));
        // A resent assignment of the current generation is acknowledged again.
        primary.Tell(new AssignPrimary(3, _volume, [endpoint], 0), _coordinator.Ref);
        _coordinator.ExpectMsg<RoleAssumed>();
    }

    [Fact]
    public void A_full_window_holds_the_guest_at_its_outstanding_limit_until_the_secondary_catches_up()
    {
        var secondary = Secondary("s1", out var endpoint);
        secondary.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var primary = StartPrimary([endpoint], window: 32 << 10, guest: Guest(window: 4));

        AwaitAssert(() =>
        {
            Assert.Equal(4, GuestStatusOf(primary).Outstanding);
            Assert.Contains("AwaitingSends", Status(primary).State);
        }, Patience);
        var held = Status(primary);
        var guestHeld = GuestStatusOf(primary);
        Assert.Empty(secondary.Writes); // the handler is blocked in the first write
        Assert.True(held.OutstandingBytes["s1"] > 0);

        // Held means held: nothing more is applied while the secondary is stuck.
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(held.Writes, Status(primary).Writes);
        Assert.Equal(guestHeld.Writes, GuestStatusOf(primary).Writes);
        Assert.Equal(4, GuestStatusOf(primary).Outstanding);

        secondary.Gate.SetResult();
        AwaitAssert(() => Assert.True(Status(primary).Writes > held.Writes + 100), Patience);
        AwaitAssert(() => Assert.True(secondary.Writes.Count > held.Writes), Patience);
        Assert.False(Status(primary).Degraded);
    }

    [Fact]
    public void A_secondary_whose_window_stays_full_for_the_prepare_timeout_is_dropped_and_the_guest_goes_on()
    {
        var stuck = Secondary("s1", out var stuckEndpoint);
        stuck.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var healthy = Secondary("s2", out var healthyEndpoint);
        IActorRef? primary = null;
        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience,
            () => primary = StartPrimary([stuckEndpoint, healthyEndpoint], window: 32 << 10, stall: TimeSpan.FromMilliseconds(300)));

        var status = Status(primary!);
        Assert.Equal(["s2"], status.ConnectedSecondaries);
        Assert.True(status.Degraded);
        var seen = healthy.Writes.Count;
        AwaitAssert(() => Assert.True(healthy.Writes.Count > seen + 100), Patience);
        stuck.Gate.SetResult();
    }

    [Fact]
    public void A_secondary_the_coordinator_left_out_is_dropped_from_the_stream_and_its_full_window_no_longer_holds_the_guest()
    {
        var stuck = Secondary("s1", out var stuckEndpoint);
        stuck.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var healthy = Secondary("s2", out var healthyEndpoint);
        // The stall timeout is far away: only the coordinator's word can release the guest.
        var primary = StartPrimary([stuckEndpoint, healthyEndpoint], window: 32 << 10, stall: TimeSpan.FromMinutes(5));
        AwaitAssert(() => Assert.Contains("AwaitingSends", Status(primary).State), Patience);

        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience,
            () => primary.Tell(new LeftReplicaSet(1, "s1", "did not answer Prepared(3) in time"), _coordinator.Ref));
        var status = Status(primary);
        Assert.Equal(["s2"], status.ConnectedSecondaries);
        var seen = healthy.Writes.Count;
        AwaitAssert(() => Assert.True(healthy.Writes.Count > seen + 100), Patience);
        stuck.Gate.SetResult();
    }

    [Fact]
    public void A_late_LeftReplicaSet_about_an_earlier_membership_leaves_the_stream_of_a_resynced_secondary_alone()
    {
        var joiner = Secondary("s1", out var endpoint);
        var primary = StartPrimary([]);
        // s1 joins by resync attempt 5 (an earlier membership of it, attempt 0, was dropped before).
        primary.Tell(new AddSecondary(1, endpoint, 64 << 10, Digest: null, Attempt: 5), _coordinator.Ref);
        _coordinator.FishForMessage(m => m is ResyncCompleted { ReplicaId: "s1", Attempt: 5 }, Patience);

        primary.Tell(new LeftReplicaSet(1, "s1", "did not answer Prepared(2) in time", ResyncAttempt: 0), _coordinator.Ref);
        Assert.Equal(["s1"], Status(primary).ConnectedSecondaries); // the status is asked after the LeftReplicaSet was handled
        var seen = joiner.Writes.Count;
        AwaitAssert(() => Assert.True(joiner.Writes.Count > seen + 20), Patience);

        // About the membership it does have, it is dropped.
        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience,
            () => primary.Tell(new LeftReplicaSet(1, "s1", "did not answer Prepared(9) in time", ResyncAttempt: 5), _coordinator.Ref));
        Assert.Empty(Status(primary).ConnectedSecondaries);
    }

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

    [Fact]
    public void A_secondary_that_cannot_be_reached_is_left_out_and_the_primary_runs_degraded()
    {
        var secondary = Secondary("s1", out var endpoint);
        var unreachable = new SecondaryEndpoint("s2", "127.0.0.1", FreePort());
        IActorRef? primary = null;
        EventFilter.Error(contains: "cannot connect to secondary s2").ExpectOne(Patience, () => primary = StartPrimary([endpoint, unreachable]));

        var status = Status(primary!);
        Assert.Equal(["s1"], status.ConnectedSecondaries);
        Assert.True(status.Degraded);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 10), Patience);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void A_secondary_lost_while_streaming_is_dropped_and_the_guest_keeps_writing()
    {
        var secondary = Secondary("s1", out var endpoint);
        var primary = StartPrimary([endpoint]);
        AwaitAssert(() => Assert.True(secondary.Writes.Count >= 10), Patience);

        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience, () => _listeners[0].DisposeAsync().AsTask().Wait(Patience));
        var before = Status(primary);
        Assert.True(before.Degraded);
        Assert.Empty(before.ConnectedSecondaries);
        AwaitAssert(() => Assert.True(Status(primary).Writes > before.Writes + 50), Patience);
        Assert.Equal(1, Close(primary, 1, 1).Epoch);
    }

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

    private static int FreePort()
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>One frame as the secondary saw it (data not kept, only its length and hash).</summary>
    private sealed record SeenFrame(char Kind, long Generation, long Epoch, long Sequence, long Offset, int Length, ulong Hash, long Writes, long Bytes);

    /// <summary>A secondary that records the frames, applies writes to an in-memory copy and keeps the guest states.</summary>
    private sealed class RecordingSecondary(long volumeSize) : IDataPlaneHandler
    {
        private readonly ConcurrentQueue<SeenFrame> _frames = new();

        public byte[] Image { get; } = new byte[volumeSize];
        public ConcurrentDictionary<long, byte[]> States { get; } = new();
        public TaskCompletionSource? Gate { get; set; }
        public List<SeenFrame> Frames => [.. _frames];
        public List<SeenFrame> Writes => [.. _frames.Where(f => f.Kind == 'W')];

        public async ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (Gate is { } gate)
                await gate.Task.WaitAsync(cancellationToken);
            data.Span.CopyTo(Image.AsSpan((int)write.Offset));
            _frames.Enqueue(new SeenFrame('W', write.Generation, write.Epoch, write.Sequence, write.Offset, write.Length, XxHash3.HashToUInt64(data.Span), 0, 0));
        }

        public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken)
        {
            _frames.Enqueue(new SeenFrame('M', marker.Generation, marker.Epoch, marker.Sequence, 0, 0, 0, marker.WritesInEpoch, marker.BytesInEpoch));
            return ValueTask.CompletedTask;
        }

        public ValueTask OnCopyAsync(CopyFrame copy, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            data.Span.CopyTo(Image.AsSpan((int)copy.Offset));
            return ValueTask.CompletedTask;
        }

        public ValueTask OnSyncCompleteAsync(SyncCompleteFrame syncComplete, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken)
        {
            States[state.Epoch] = blob.ToArray();
            _frames.Enqueue(new SeenFrame('S', state.Generation, state.Epoch, state.Sequence, 0, state.Length, XxHash3.HashToUInt64(blob.Span), 0, 0));
            return ValueTask.CompletedTask;
        }
    }
}
