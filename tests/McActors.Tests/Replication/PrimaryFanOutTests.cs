using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>
/// The primary's fan-out and back-pressure against in-memory streams (no sockets): the test
/// decides when a secondary's window is full and when its stream breaks.
/// </summary>
public sealed class PrimaryFanOutTests : TestKit, IDisposable
{
    private const long VolumeSize = 4 << 20;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mcactors-fanout-{Guid.NewGuid():N}");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), VolumeSize, 4096);
    private readonly InMemoryReplicaStreams _streams = new();
    private readonly TestProbe _coordinator;

    public PrimaryFanOutTests(ITestOutputHelper output) : base(Config(), output: output)
    {
        Directory.CreateDirectory(_directory);
        _coordinator = CreateTestProbe("coordinator");
    }

    private static Config Config() =>
        McActorsSettings.DefaultConfig;

    void IDisposable.Dispose()
    {
        Shutdown();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static SecondaryEndpoint Endpoint(string id) => new(id, id, 1);

    private IActorRef StartPrimary(IReadOnlyList<SecondaryEndpoint> secondaries, TimeSpan? stall = null, long? writeLimit = null)
    {
        var settings = McActorsSettings.From(Sys.Settings.Config) with { PrepareTimeout = stall ?? TimeSpan.FromMinutes(5) };
        Props Guest(GuestContext guest) => SyntheticGuestActor.Props(guest, new SyntheticGuestOptions(7, VolumeSize, MaxOutstanding: 4, WriteLimit: writeLimit));
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _directory, _coordinator.Ref, settings, Guest, streams: _streams), "primary");
        primary.Tell(new AssignPrimary(1, _volume, secondaries, LastCommitted: 0), _coordinator.Ref);
        _coordinator.ExpectMsg<RoleAssumed>(Patience);
        return primary;
    }

    private PrimaryStatus Status(IActorRef primary)
    {
        primary.Tell(GetPrimaryStatus.Instance, TestActor);
        return ExpectMsg<PrimaryStatus>();
    }

    private GuestStatus GuestStatusOf(IActorRef primary)
    {
        Sys.ActorSelection(primary.Path / "guest").Tell(GetGuestStatus.Instance, TestActor);
        return ExpectMsg<GuestStatus>();
    }

    private static void AssertGapless(IReadOnlyList<StreamedFrame> writes, long first = 1) =>
        Assert.Equal(Enumerable.Range(0, writes.Count).Select(i => first + i), writes.Select(w => w.Sequence));

    [Fact]
    public void A_full_window_holds_the_guests_next_writes_until_the_secondary_takes_the_frame()
    {
        var s1 = _streams.Add("s1");
        s1.Hold(frames: 0);
        var primary = StartPrimary([Endpoint("s1")]);

        AwaitAssert(() =>
        {
            Assert.Equal(4, GuestStatusOf(primary).Outstanding);
            Assert.Equal("Running/AwaitingSends", Status(primary).State);
        }, Patience);
        // One write is applied and waits in the stream; the guest's other three wait in the primary.
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(1, Status(primary).Writes);
        Assert.Single(s1.Writes);
        Assert.Equal(4, GuestStatusOf(primary).Outstanding);

        s1.Release();
        AwaitAssert(() => Assert.True(s1.Writes.Count > 100), Patience);
        AssertGapless(s1.Writes);
        Assert.Equal("Running", Status(primary).State);
        Assert.False(Status(primary).Degraded);
    }

    [Fact]
    public void A_secondary_whose_stream_fails_is_dropped_and_the_primary_reports_itself_degraded_while_the_other_goes_on()
    {
        var s1 = _streams.Add("s1");
        var s2 = _streams.Add("s2");
        var primary = StartPrimary([Endpoint("s1"), Endpoint("s2")]);
        AwaitAssert(() => Assert.True(s1.Writes.Count >= 10), Patience);

        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience, () => s1.Fail(new IOException("connection reset")));
        var status = Status(primary);
        Assert.Equal(["s2"], status.ConnectedSecondaries);
        Assert.True(status.Degraded);
        Assert.Equal(["s2"], status.OutstandingBytes.Keys);
        var seen = s2.Writes.Count;
        AwaitAssert(() => Assert.True(s2.Writes.Count > seen + 100), Patience);
        AssertGapless(s2.Writes);
    }

    [Fact]
    public void A_stream_that_fails_while_its_full_window_holds_a_write_releases_the_guest_and_the_other_secondary_misses_nothing()
    {
        var s1 = _streams.Add("s1");
        var s2 = _streams.Add("s2");
        s1.Hold(frames: 5);
        var primary = StartPrimary([Endpoint("s1"), Endpoint("s2")]);
        AwaitAssert(() => Assert.Equal("Running/AwaitingSends", Status(primary).State), Patience);
        Assert.Equal(6, s2.Writes.Count); // the held frame went to both

        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience, () => s1.Fail(new IOException("connection reset")));
        AwaitAssert(() => Assert.True(s2.Writes.Count > 100), Patience);
        AssertGapless(s2.Writes);
        Assert.Equal(6, s1.Writes.Count);
        Assert.True(s1.Disposed);
        Assert.Equal(["s2"], Status(primary).ConnectedSecondaries);
    }

    [Fact]
    public void A_window_that_stays_full_for_the_prepare_timeout_drops_only_that_secondary()
    {
        var s1 = _streams.Add("s1");
        var s2 = _streams.Add("s2");
        s1.Hold(frames: 0);
        IActorRef? primary = null;
        EventFilter.Warning(contains: "secondary s1 dropped").ExpectOne(Patience,
            () => primary = StartPrimary([Endpoint("s1"), Endpoint("s2")], stall: TimeSpan.FromMilliseconds(300)));

        Assert.True(s1.Disposed);
        Assert.False(s2.Disposed);
        AwaitAssert(() => Assert.True(s2.Writes.Count > 100), Patience);
        Assert.Equal(["s2"], Status(primary!).ConnectedSecondaries);
    }

    [Fact]
    public void A_secondary_whose_stream_cannot_be_opened_is_left_out_and_the_coordinator_is_not_told()
    {
        var s1 = _streams.Add("s1");
        IActorRef? primary = null;
        EventFilter.Error(contains: "cannot connect to secondary s2").ExpectOne(Patience, () => primary = StartPrimary([Endpoint("s1"), Endpoint("s2")]));

        var status = Status(primary!);
        Assert.Equal(["s1"], status.ConnectedSecondaries);
        Assert.True(status.Degraded);
        AwaitAssert(() => Assert.True(s1.Writes.Count >= 10), Patience);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void Closing_an_epoch_sends_its_marker_then_its_guest_state_on_every_stream_in_the_shared_sequence()
    {
        var s1 = _streams.Add("s1");
        var s2 = _streams.Add("s2");
        var primary = StartPrimary([Endpoint("s1"), Endpoint("s2")]);
        AwaitAssert(() => Assert.True(s2.Writes.Count >= 10), Patience);

        primary.Tell(new CloseEpoch(1, 1), _coordinator.Ref);
        var closed = _coordinator.ExpectMsg<EpochClosed>(Patience);

        foreach (var stream in new[] { s1, s2 })
        {
            var epoch1 = stream.Frames.TakeWhile(f => f.Epoch == 1).ToList();
            Assert.Equal(closed.Writes + 2, epoch1.Count);
            Assert.Equal(['M', 'S'], epoch1.TakeLast(2).Select(f => f.Kind));
            Assert.Equal(Enumerable.Range(1, epoch1.Count).Select(i => (long)i), epoch1.Select(f => f.Sequence));
        }
        AwaitAssert(() => Assert.Contains(s1.Frames, f => f.Epoch == 2), Patience);
    }

    [Fact]
    public void A_close_held_by_a_full_window_reports_Closing_AwaitingSends_and_answers_only_once_the_window_opens()
    {
        // A guest that writes nothing: the first frame, the one the full window holds, is the close's marker.
        var s1 = _streams.Add("s1");
        s1.Hold(frames: 0);
        var primary = StartPrimary([Endpoint("s1")], writeLimit: 0);

        primary.Tell(new CloseEpoch(1, 1), _coordinator.Ref);
        AwaitAssert(() => Assert.Equal("Closing/AwaitingSends", Status(primary).State), Patience);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        s1.Release();
        var closed = _coordinator.ExpectMsg<EpochClosed>(Patience);
        Assert.Equal((1L, 0L), (closed.Epoch, closed.Writes));
        Assert.Equal(['M', 'S'], s1.Frames.Select(f => f.Kind));
        AwaitAssert(() => Assert.Equal("Running", Status(primary).State), Patience);
    }

    [Fact]
    public void A_joiner_gets_the_differing_chunks_in_order_then_sync_complete_and_the_coordinator_hears_it_is_in_sync()
    {
        var s1 = _streams.Add("s1");
        var primary = StartPrimary([Endpoint("s1")]);
        AwaitAssert(() => Assert.True(s1.Writes.Count >= 50), Patience);
        var s2 = _streams.Add("s2");

        primary.Tell(new AddSecondary(1, Endpoint("s2"), ChunkBytes: 64 << 10, Digest: null, Attempt: 7), _coordinator.Ref);
        var completed = (ResyncCompleted)_coordinator.FishForMessage(m => m is ResyncCompleted, Patience);

        Assert.Equal(("s2", 7L), (completed.ReplicaId, completed.Attempt));
        // The guest's writes interleave with the copy; the sync-complete follows the last chunk.
        var frames = s2.Frames.ToList();
        var copy = frames.Where(f => f.Kind == 'C').ToList();
        Assert.NotEmpty(copy);
        Assert.All(copy, c => Assert.Equal(0, c.Offset % (64 << 10)));
        Assert.Equal(copy.Select(c => c.Offset).Order(), copy.Select(c => c.Offset));
        var done = Assert.Single(frames, f => f.Kind == 'D');
        Assert.Equal(completed.FromEpoch, done.Epoch);
        Assert.True(frames.IndexOf(done) > frames.IndexOf(copy[^1]));
        // From the joiner's first sequence on it gets every write, with no gap.
        var first = _streams.Connects.Single(c => c.Host == "s2").FirstSequence;
        AwaitAssert(() => Assert.True(s2.Writes.Count >= 10), Patience);
        AssertGapless(s2.Writes, first);
        var status = Status(primary);
        Assert.Equal(["s1", "s2"], status.ConnectedSecondaries);
        Assert.False(status.Degraded);
    }
}
