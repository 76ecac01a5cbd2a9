using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using McActors.DataPlane;
using Xunit.Abstractions;

namespace McActors.Tests.DataPlane;

public sealed class DataPlaneEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);
    private static readonly DataPlaneVolume Volume = new(Streams.Volume, 4096);
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);

    [Theory]
    [InlineData(1 << 20)]
    [InlineData(4096)] // tiny receive segments: most writes straddle two, exercising the pooled copy
    public async Task The_stream_arrives_in_order_and_intact(int segmentBytes)
    {
        var options = new DataPlaneOptions { SegmentBytes = segmentBytes, WindowBytes = 1 << 20, AckIntervalBytes = 256 << 10 };
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler, options).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, generation: 3, firstSequence: 1, options);

        var expected = new List<string>();
        var seeds = new List<int>();
        Seeds.Run(1, seeds.Add, output);
        var random = new Random(seeds[0]);
        long sequence = 1, epoch = 1, writesInEpoch = 0, bytesInEpoch = 0;
        for (var i = 0; i < 300; i++)
        {
            var data = new byte[random.Next(0, 100_000)];
            random.NextBytes(data);
            var offset = random.Next(0, 1 << 20) * 512L;
            await sender.SendWriteAsync(epoch, sequence, offset, data);
            expected.Add($"W g3 e{epoch} s{sequence} @{offset} {data.Length}B #{Streams.Hash(data):X}");
            sequence++;
            writesInEpoch++;
            bytesInEpoch += data.Length;
            if (random.Next(40) == 0 || i == 299)
            {
                await sender.SendMarkerAsync(epoch, sequence, writesInEpoch, bytesInEpoch);
                expected.Add($"M g3 e{epoch} s{sequence} {writesInEpoch}/{bytesInEpoch}");
                sequence++;
                var blob = new byte[random.Next(0, 5000)];
                random.NextBytes(blob);
                await sender.SendGuestStateAsync(epoch, sequence, blob);
                expected.Add($"S g3 e{epoch} s{sequence} {blob.Length}B #{Streams.Hash(blob):X}");
                sequence++;
                epoch++;
                writesInEpoch = bytesInEpoch = 0;
            }
        }
        await sender.WaitForAcknowledgementAsync(sequence - 1).WaitAsync(Patience);

        Assert.Equal(sequence - 1, sender.AcknowledgedSequence);
        Assert.Equal(0, sender.OutstandingBytes);
        Assert.Equal(sequence, sender.NextSequence);
        Assert.Equal(expected, handler.Events);
    }

    [Fact]
    public async Task A_full_window_holds_the_sender_until_the_secondary_catches_up()
    {
        const int window = 256 << 10;
        var options = new DataPlaneOptions { WindowBytes = window };
        var handler = new RecordingHandler();
        handler.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler, options).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1, options);

        var data = new byte[64 << 10];
        long sequence = 1;
        ValueTask pending = default;
        for (; sequence < 100; sequence++)
        {
            pending = sender.SendWriteAsync(1, sequence, 0, data);
            if (!pending.IsCompleted)
                break;
            await pending;
        }
        // The window holds fewer than four 64 KiB frames (each has 48 B of framing).
        Assert.Equal(4, sequence);
        await handler.FirstCallEntered.Task.WaitAsync(Patience);
        Assert.False(pending.IsCompleted, "a send completed while the window was full");
        Assert.Equal(0, sender.AcknowledgedSequence);
        Assert.InRange(sender.OutstandingBytes, 3 * data.Length, window);

        handler.Gate.SetResult();
        await pending.AsTask().WaitAsync(Patience);
        for (sequence++; sequence <= 20; sequence++)
            await sender.SendWriteAsync(1, sequence, 0, data);
        await sender.WaitForAcknowledgementAsync(20).WaitAsync(Patience);
        Assert.Equal(20, handler.Events.Count);
    }

    [Fact]
    public async Task A_handshake_for_another_volume_is_refused_naming_the_mismatch()
    {
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, new RecordingHandler()).Start();
        var other = new DataPlaneVolume(Guid.NewGuid(), 4096);
        var e = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => DataPlaneSender.ConnectAsync(listener.LocalEndPoint, other, 1, 1));
        Assert.Equal(DataPlaneErrorCode.VolumeMismatch, e.Code);
        Assert.True(e.Remote);
        Assert.Contains(other.VolumeId.ToString(), e.Message);
        Assert.Contains(Volume.VolumeId.ToString(), e.Message);

        var wrongBlock = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume with { BlockSize = 512 }, 1, 1));
        Assert.Equal(DataPlaneErrorCode.BlockSizeMismatch, wrongBlock.Code);
        Assert.Contains("block size 512 B, expected 4096 B", wrongBlock.Message);
    }

    [Fact]
    public async Task An_older_generation_is_refused_and_a_newer_one_replaces_the_current_primary()
    {
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        await using var five = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 5, 1);
        Assert.Equal(5, listener.CurrentGeneration);

        var stale = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 4, 1));
        Assert.Equal(DataPlaneErrorCode.StaleGeneration, stale.Code);
        Assert.Contains("generation 4 is stale", stale.Message);

        // Generation 5 is unaffected by the refused attempt.
        await five.SendWriteAsync(1, 1, 0, new byte[512]);
        await five.WaitForAcknowledgementAsync(1).WaitAsync(Patience);

        await using var six = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 6, 2);
        var replaced = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => five.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.Replaced, replaced.Code);
        await Assert.ThrowsAsync<DataPlaneConnectionException>(async () => await five.SendWriteAsync(1, 2, 0, new byte[512]));

        await six.SendWriteAsync(2, 2, 0, new byte[512]);
        await six.WaitForAcknowledgementAsync(2).WaitAsync(Patience);
        Assert.Equal(["W g5 e1 s1 @0 512B", "W g6 e2 s2 @0 512B"], handler.Events.Select(e => e[..e.IndexOf(" #", StringComparison.Ordinal)]));

        // Once generation 6 was seen, 5 stays fenced off even after 6 leaves.
        await six.DisposeAsync();
        var fenced = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 5, 3));
        Assert.Equal(DataPlaneErrorCode.StaleGeneration, fenced.Code);
    }

    [Fact]
    public async Task Raising_the_fence_closes_a_stale_primary()
    {
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, new RecordingHandler()).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 2, 1);
        await listener.RaiseFenceAsync(3);
        var e = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.StaleGeneration, e.Code);
        Assert.Null(listener.CurrentGeneration);
    }

    [Fact]
    public async Task The_secondary_tells_the_primary_where_it_is()
    {
        var handler = new RecordingHandler { Applied = 41 };
        await using var listener = new DataPlaneListener("127.0.0.1", 0, Volume, handler).Start();
        Assert.NotEqual(0, listener.Port);
        await using var sender = await DataPlaneSender.ConnectAsync("127.0.0.1", listener.Port, Volume, 1, 42);
        Assert.Equal(41, sender.PeerAppliedSequence);
        Assert.Equal(41, sender.AcknowledgedSequence);
        await Assert.ThrowsAsync<ArgumentException>(async () => await sender.SendWriteAsync(1, 43, 0, new byte[1]));
        await sender.SendWriteAsync(1, 42, 0, new byte[1]);
        await sender.WaitForAcknowledgementAsync(42).WaitAsync(Patience);
    }

    [Fact]
    public async Task A_gap_in_the_sequence_closes_the_stream()
    {
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, new RecordingHandler()).Start();
        using var client = await RawClientAsync(listener);
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHandshake(writer, new HandshakeFrame(FrameCodec.ProtocolVersion, Volume.VolumeId, 1, Volume.BlockSize, 1));
        FrameCodec.WriteWrite(writer, new WriteFrame(1, 1, 2, 0, 1), new byte[1]);
        await client.SendAsync(writer.WrittenMemory);
        var frames = await ReadAllAsync(client);
        Assert.Equal(FrameType.Handshake, frames[0].Type);
        Assert.Equal(FrameType.Error, frames[^1].Type);
        Assert.Contains("SequenceGap", frames[^1].Fields);
        Assert.Contains("sequence 2, expected 1", frames[^1].Fields);
    }

    [Fact]
    public async Task A_frame_of_a_stale_generation_closes_the_stream()
    {
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        using var client = await RawClientAsync(listener);
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHandshake(writer, new HandshakeFrame(FrameCodec.ProtocolVersion, Volume.VolumeId, 5, Volume.BlockSize, 1));
        FrameCodec.WriteWrite(writer, new WriteFrame(5, 1, 1, 0, 1), new byte[1]);
        FrameCodec.WriteWrite(writer, new WriteFrame(4, 1, 2, 0, 1), new byte[1]);
        await client.SendAsync(writer.WrittenMemory);
        var frames = await ReadAllAsync(client);
        Assert.Equal([FrameType.Handshake, FrameType.Ack, FrameType.Error], frames.Select(f => f.Type));
        Assert.Equal(1, frames[1].Sequence);
        Assert.Contains("StaleGeneration", frames[2].Fields);
        Assert.Single(handler.Events);
    }

    [Fact]
    public async Task A_frame_larger_than_the_window_still_goes_alone()
    {
        var options = new DataPlaneOptions { WindowBytes = 64 << 10 };
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler, options).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1, options);
        var blob = Streams.Bytes(300_000, 5);
        await sender.SendGuestStateAsync(1, 1, blob).AsTask().WaitAsync(Patience);
        await sender.SendGuestStateAsync(1, 2, blob).AsTask().WaitAsync(Patience);
        await sender.WaitForAcknowledgementAsync(2).WaitAsync(Patience);
        Assert.Equal(2, handler.Events.Count);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await sender.SendGuestStateAsync(1, 3, new byte[options.MaxPayloadBytes + 1]));
    }

    [Fact]
    public async Task Garbage_is_refused_and_the_listener_keeps_serving()
    {
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        using (var client = await RawClientAsync(listener))
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            var frames = await ReadAllAsync(client);
            var error = Assert.Single(frames);
            Assert.Contains("ProtocolViolation", error.Fields);
            Assert.Contains("bad frame magic", error.Fields);
        }
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1);
        await sender.SendWriteAsync(1, 1, 0, new byte[10]);
        await sender.WaitForAcknowledgementAsync(1).WaitAsync(Patience);
    }

    [Fact]
    public async Task A_failing_handler_or_a_stopping_secondary_fails_the_sender()
    {
        var handler = new RecordingHandler { FailOnSequence = 2 };
        var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        await using (listener)
        {
            await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1);
            await sender.SendWriteAsync(1, 1, 0, new byte[10]);
            await sender.SendWriteAsync(1, 2, 0, new byte[10]);
            var e = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
            Assert.Equal(DataPlaneErrorCode.HandlerFailed, e.Code);
            Assert.Contains("disk on fire", e.Message);
            Assert.Equal(1, sender.AcknowledgedSequence);
            var (generation, error) = await handler.Disconnected.Task.WaitAsync(Patience);
            Assert.Equal(1, generation);
            Assert.IsType<InvalidOperationException>(error);
        }

        var other = new DataPlaneListener(AnyLoopbackPort, Volume, new RecordingHandler()).Start();
        var second = await DataPlaneSender.ConnectAsync(other.LocalEndPoint, Volume, 1, 1);
        await other.DisposeAsync();
        var stopped = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => second.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.ShuttingDown, stopped.Code);
        await second.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_the_sender_completes_it_and_the_secondary_sees_a_clean_close()
    {
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1);
        await sender.SendWriteAsync(1, 1, 0, new byte[10]);
        await sender.DisposeAsync();
        await sender.Completion.WaitAsync(Patience);
        var (_, error) = await handler.Disconnected.Task.WaitAsync(Patience);
        Assert.Null(error);
        Assert.Single(handler.Events);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await sender.SendWriteAsync(1, 2, 0, new byte[1]));
    }

    [Fact]
    public async Task Connecting_to_nothing_fails_with_a_connection_error()
    {
        int port;
        using (var probe = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(AnyLoopbackPort);
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }
        var e = await Assert.ThrowsAsync<DataPlaneConnectionException>(() => DataPlaneSender.ConnectAsync("127.0.0.1", port, Volume, 1, 1));
        Assert.Contains($"127.0.0.1:{port}", e.Message);
    }

    [Fact]
    public async Task A_secondary_that_never_answers_times_the_handshake_out()
    {
        using var silent = new Socket(SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(AnyLoopbackPort);
        silent.Listen(1);
        var options = new DataPlaneOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(200) };
        var e = await Assert.ThrowsAsync<DataPlaneConnectionException>(() =>
            DataPlaneSender.ConnectAsync((IPEndPoint)silent.LocalEndPoint!, Volume, 1, 1, options).WaitAsync(Patience));
        Assert.Contains("no data-plane handshake", e.Message);
    }

    private static async Task<Socket> RawClientAsync(DataPlaneListener listener)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(listener.LocalEndPoint);
        return socket;
    }

    private static async Task<List<FrameRecord>> ReadAllAsync(Socket socket)
    {
        var received = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(Patience);
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
            received.Write(buffer, 0, read);
        return Streams.DecodeAll(new ReadOnlySequence<byte>(received.ToArray()));
    }

    /// <summary>Records what it is handed; optionally blocks, fails, or claims an applied sequence.</summary>
    private sealed class RecordingHandler : IDataPlaneHandler
    {
        public ConcurrentQueue<string> EventQueue { get; } = new();
        public List<string> Events => [.. EventQueue];
        public TaskCompletionSource? Gate { get; set; }
        public TaskCompletionSource FirstCallEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource<(long, Exception?)> Disconnected { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long? Applied { get; init; }
        public long FailOnSequence { get; init; } = -1;

        public ValueTask<long> OnConnectedAsync(HandshakeFrame primary, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Applied ?? primary.Sequence - 1);

        public async ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            FirstCallEntered.TrySetResult();
            if (Gate is { } gate)
                await gate.Task.WaitAsync(cancellationToken);
            if (write.Sequence == FailOnSequence)
                throw new InvalidOperationException("disk on fire");
            Assert.Equal(write.Length, data.Length);
            EventQueue.Enqueue($"W g{write.Generation} e{write.Epoch} s{write.Sequence} @{write.Offset} {data.Length}B #{Streams.Hash(data.Span):X}");
        }

        public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken)
        {
            EventQueue.Enqueue($"M g{marker.Generation} e{marker.Epoch} s{marker.Sequence} {marker.WritesInEpoch}/{marker.BytesInEpoch}");
            return ValueTask.CompletedTask;
        }

        public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken)
        {
            EventQueue.Enqueue($"S g{state.Generation} e{state.Epoch} s{state.Sequence} {blob.Length}B #{Streams.Hash(blob.Span):X}");
            return ValueTask.CompletedTask;
        }

        public void OnDisconnected(long generation, Exception? error) => Disconnected.TrySetResult((generation, error));
    }
}
