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
public sealed partial class PrimaryActorTests : TestKit, IAsyncLifetime
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
