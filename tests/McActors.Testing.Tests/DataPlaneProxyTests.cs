using System.Diagnostics;
using System.Net;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using McActors.DataPlane;
using McActors.Testing;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>
/// The proxy between a real <see cref="DataPlaneSender"/> (the primary) and a real
/// <see cref="DataPlaneListener"/> (the secondary); the listener's handler reports every frame it
/// applies to the test actor.
/// </summary>
public sealed class DataPlaneProxyTests(ITestOutputHelper output) : TestKit(output: output), IAsyncLifetime
{
    private static readonly DataPlaneVolume Volume = new(Guid.NewGuid(), 4096);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(400);

    private DataPlaneListener _listener = null!;
    private DataPlaneProxy _proxy = null!;

    public Task InitializeAsync()
    {
        _listener = new DataPlaneListener(new IPEndPoint(IPAddress.Loopback, 0), Volume, new ReportingHandler(TestActor)).Start();
        _proxy = DataPlaneProxy.Start(_listener.LocalEndPoint);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _listener.DisposeAsync();
    }

    private Task<DataPlaneSender> ConnectThroughProxy(long firstSequence = 1) =>
        DataPlaneSender.ConnectAsync(_proxy.EndPoint, Volume, generation: 1, firstSequence);

    private static ValueTask Write(DataPlaneSender sender, long sequence) =>
        sender.SendWriteAsync(1, sequence, (sequence % 64) * 4096, new byte[4096]);

    [Fact]
    public async Task A_healed_proxy_passes_every_frame_in_order()
    {
        await using var sender = await ConnectThroughProxy();
        for (long s = 1; s <= 20; s++)
            await Write(sender, s);
        await sender.SendMarkerAsync(1, 21, 20, 20 * 4096);
        await sender.WaitForAcknowledgementAsync(21).WaitAsync(Patience);

        for (long s = 1; s <= 20; s++)
            ExpectMsg($"write {s}");
        ExpectMsg("marker 21");
        Assert.Equal(22, _proxy.FramesForwarded); // handshake + 20 writes + marker
        Assert.Equal(0, _proxy.FramesDropped);
    }

    [Fact]
    public async Task A_dropped_write_is_a_sequence_gap_that_closes_the_connection()
    {
        await using var sender = await ConnectThroughProxy();
        await Write(sender, 1);
        await sender.WaitForAcknowledgementAsync(1).WaitAsync(Patience);
        ExpectMsg("write 1");

        _proxy.DropNext(1, FrameType.Write);
        await Write(sender, 2); // lost
        await Write(sender, 3); // arrives after a hole

        var refused = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.SequenceGap, refused.Code);
        Assert.True(refused.Remote, "the secondary, not the sender, found the gap");
        ExpectMsg<string>(m => m.StartsWith("disconnected with DataPlane", StringComparison.Ordinal));
        ExpectNoMsg(Quiet); // neither write 2 nor write 3 was applied
        Assert.Equal(1, _proxy.FramesDropped);
    }

    [Fact]
    public async Task Only_frames_the_predicate_matches_are_dropped()
    {
        await using var sender = await ConnectThroughProxy();
        _proxy.DropNext(1, f => f.Type == FrameType.Write && f.Sequence == 3);
        await Write(sender, 1);
        await Write(sender, 2);
        await sender.WaitForAcknowledgementAsync(2).WaitAsync(Patience);
        ExpectMsg("write 1");
        ExpectMsg("write 2");
        Assert.Equal(0, _proxy.FramesDropped);

        await Write(sender, 3);
        await Write(sender, 4);
        var refused = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.SequenceGap, refused.Code);
        Assert.Equal(1, _proxy.FramesDropped);
    }

    [Fact]
    public async Task A_delay_holds_every_frame_back_and_heal_lifts_it()
    {
        await using var sender = await ConnectThroughProxy();
        _proxy.Delay(TimeSpan.FromMilliseconds(300));
        var watch = Stopwatch.StartNew();
        for (long s = 1; s <= 5; s++)
            await Write(sender, s);
        ExpectNoMsg(TimeSpan.FromMilliseconds(150));
        for (long s = 1; s <= 5; s++)
            ExpectMsg($"write {s}", Patience);
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(290), $"delayed frames arrived after {watch.Elapsed}");
        // Each frame is due 300 ms after it arrived: five frames take ~300 ms, not 5 x 300 ms.
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(1200), $"the frames were delayed one after the other ({watch.Elapsed})");

        _proxy.Heal();
        watch.Restart();
        await Write(sender, 6);
        ExpectMsg("write 6", Patience);
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(250), $"a frame after heal took {watch.Elapsed}");
        await sender.WaitForAcknowledgementAsync(6).WaitAsync(Patience);
    }

    [Fact]
    public async Task A_blackholed_link_loses_frames_so_the_first_frame_after_heal_finds_a_gap()
    {
        await using var sender = await ConnectThroughProxy();
        await Write(sender, 1);
        await sender.WaitForAcknowledgementAsync(1).WaitAsync(Patience);
        ExpectMsg("write 1");

        _proxy.Blackhole();
        await Write(sender, 2);
        ExpectNoMsg(Quiet);
        Assert.Equal(1, sender.AcknowledgedSequence);
        Assert.False(sender.Completion.IsCompleted, "a blackhole keeps the connection open");

        _proxy.Heal();
        await Write(sender, 3);
        var refused = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.SequenceGap, refused.Code);
        ExpectMsg<string>(m => m.StartsWith("disconnected", StringComparison.Ordinal));
    }

    [Fact]
    public async Task After_a_fault_the_primary_reconnects_through_the_proxy_and_resumes()
    {
        var sender = await ConnectThroughProxy();
        await Write(sender, 1);
        await sender.WaitForAcknowledgementAsync(1).WaitAsync(Patience);
        ExpectMsg("write 1");
        _proxy.DropNext(1);
        await Write(sender, 2);
        await Write(sender, 3);
        await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
        await sender.DisposeAsync();
        ExpectMsg<string>(m => m.StartsWith("disconnected", StringComparison.Ordinal));

        await using var again = await ConnectThroughProxy(firstSequence: 2);
        Assert.Equal(1, again.PeerAppliedSequence);
        await Write(again, 2);
        await again.WaitForAcknowledgementAsync(2).WaitAsync(Patience);
        ExpectMsg("write 2");
        Assert.Equal(2, _proxy.Connections);
    }

    [Fact]
    public async Task Cut_connections_break_the_stream_on_both_ends()
    {
        await using var sender = await ConnectThroughProxy();
        await Write(sender, 1);
        await sender.WaitForAcknowledgementAsync(1).WaitAsync(Patience);
        ExpectMsg("write 1");

        _proxy.CutConnections();
        await Assert.ThrowsAnyAsync<DataPlaneException>(() => sender.Completion.WaitAsync(Patience));
        ExpectMsg<string>(m => m.StartsWith("disconnected", StringComparison.Ordinal));
        await using var again = await ConnectThroughProxy(firstSequence: 2);
        Assert.Equal(1, again.PeerAppliedSequence);
    }

    /// <summary>Tells the test actor about every frame applied; resumes from the last applied sequence.</summary>
    private sealed class ReportingHandler(IActorRef report) : IDataPlaneHandler
    {
        private long _applied;

        public ValueTask<long> OnConnectedAsync(HandshakeFrame primary, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Interlocked.Read(ref _applied));

        public ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            Interlocked.Exchange(ref _applied, write.Sequence);
            report.Tell($"write {write.Sequence}");
            return ValueTask.CompletedTask;
        }

        public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken)
        {
            Interlocked.Exchange(ref _applied, marker.Sequence);
            report.Tell($"marker {marker.Sequence}");
            return ValueTask.CompletedTask;
        }

        public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken)
        {
            Interlocked.Exchange(ref _applied, state.Sequence);
            report.Tell($"state {state.Sequence}");
            return ValueTask.CompletedTask;
        }

        public void OnDisconnected(long generation, Exception? error) =>
            report.Tell(error is null ? "disconnected cleanly" : $"disconnected with {error.GetType().Name}: {error.Message}");
    }
}
