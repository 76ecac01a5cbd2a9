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

    [Theory]
    [InlineData(1 << 20)]
    [InlineData(4096)] // copies straddle receive segments too
    public async Task Copies_and_sync_complete_interleave_with_the_stream_in_send_order(int segmentBytes)
    {
        // A small window and ack interval: copies fill the window again and again.
        var options = new DataPlaneOptions { SegmentBytes = segmentBytes, WindowBytes = 512 << 10, AckIntervalBytes = 64 << 10 };
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler, options).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, generation: 4, firstSequence: 10, options);

        var seeds = new List<int>();
        Seeds.Run(1, seeds.Add, output);
        var random = new Random(seeds[0]);
        var expected = new List<string>();
        long sequence = 10, epoch = 300, copies = 0;
        var chunk = new byte[64 << 10];
        for (var i = 0; i < 400; i++)
        {
            var roll = random.Next(10);
            if (roll < 4)
            {
                // A copy, first of all possibly before any write: it follows sequence 9.
                random.NextBytes(chunk);
                var length = random.Next(0, 2) == 0 ? chunk.Length : random.Next(0, chunk.Length);
                var offset = random.Next(0, 1 << 14) * 65536L;
                await sender.SendCopyAsync(epoch, offset, chunk.AsMemory(0, length));
                expected.Add($"C g4 e{epoch} after{sequence - 1} @{offset} {length}B #{Streams.Hash(chunk.AsSpan(0, length)):X}");
                copies++;
            }
            else if (roll < 9)
            {
                var data = new byte[random.Next(0, 20_000)];
                random.NextBytes(data);
                var offset = random.Next(0, 1 << 20) * 512L;
                await sender.SendWriteAsync(epoch, sequence, offset, data);
                expected.Add($"W g4 e{epoch} s{sequence} @{offset} {data.Length}B #{Streams.Hash(data):X}");
                sequence++;
            }
            else
            {
                await sender.SendMarkerAsync(epoch, sequence, 0, 0);
                expected.Add($"M g4 e{epoch} s{sequence} 0/0");
                sequence++;
                epoch++;
            }
        }
        await sender.SendSyncCompleteAsync(epoch);
        expected.Add($"Y g4 e{epoch} after{sequence - 1}");
        var write = Streams.Bytes(512, 9);
        await sender.SendWriteAsync(epoch, sequence, 0, write); // the stream goes on after it
        expected.Add($"W g4 e{epoch} s{sequence} @0 512B #{Streams.Hash(write):X}");
        sequence++;

        Assert.Equal(sequence, sender.NextSequence); // copies took no sequence
        Assert.Equal(expected.Count, sender.FramesSent);
        await sender.WaitForFramesAcknowledgedAsync(sender.FramesSent).WaitAsync(Patience);
        await sender.WaitForAcknowledgementAsync(sequence - 1).WaitAsync(Patience);
        Assert.Equal(sequence - 1, sender.AcknowledgedSequence);
        Assert.Equal(expected.Count, sender.AcknowledgedFrames);
        Assert.Equal(0, sender.OutstandingBytes);
        Assert.Equal(expected, handler.Events);
        output.WriteLine($"{copies} copies among {expected.Count} frames");
    }

    [Fact]
    public async Task A_window_full_of_copies_holds_the_next_copy_and_the_next_write()
    {
        const int window = 256 << 10;
        var options = new DataPlaneOptions { WindowBytes = window };
        var handler = new RecordingHandler { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler, options).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1, options);

        var chunk = new byte[64 << 10];
        // Three 64 KiB copies fit (each has 48 B of framing); the fourth does not.
        for (var i = 0; i < 3; i++)
            await sender.SendCopyAsync(1, i * (long)chunk.Length, chunk).AsTask().WaitAsync(Patience);
        var copy = sender.SendCopyAsync(1, 3L * chunk.Length, chunk);
        await handler.FirstCallEntered.Task.WaitAsync(Patience);
        Assert.False(copy.IsCompleted, "a copy was queued while the window was full of copies");
        Assert.Equal(0, sender.AcknowledgedFrames);
        Assert.Equal(3 * FrameCodec.CopyFrameSize(chunk.Length), sender.OutstandingBytes);

        handler.Gate.SetResult();
        await copy.AsTask().WaitAsync(Patience);
        await sender.WaitForFramesAcknowledgedAsync(4).WaitAsync(Patience);
        Assert.Equal(0, sender.OutstandingBytes);
        Assert.Equal(0, sender.AcknowledgedSequence); // nothing sequenced was sent yet

        // Writes are held by copy bytes too: the window is one, whatever fills it.
        handler.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        for (var i = 0; i < 3; i++)
            await sender.SendCopyAsync(1, i * (long)chunk.Length, chunk).AsTask().WaitAsync(Patience);
        var write = sender.SendWriteAsync(1, 1, 0, chunk);
        await handler.GateEntered(5).WaitAsync(Patience);
        Assert.False(write.IsCompleted, "a write was queued while the window was full of copies");
        handler.Gate.SetResult();
        await write.AsTask().WaitAsync(Patience);
        await sender.SendSyncCompleteAsync(2);
        await sender.WaitForFramesAcknowledgedAsync(9).WaitAsync(Patience);
        Assert.Equal(1, sender.AcknowledgedSequence);
        Assert.Equal(0, sender.OutstandingBytes);
        Assert.Equal(["C", "C", "C", "C", "C", "C", "C", "W", "Y"], handler.Events.Select(e => e[..1]));
        Assert.Equal("W g1 e1 s1", handler.Events[7][..10]);
        Assert.Equal("Y g1 e2 after1", handler.Events[8]);
    }

    [Fact]
    public async Task A_copy_out_of_its_place_in_the_stream_closes_it()
    {
        var handler = new RecordingHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        using var client = await RawClientAsync(listener);
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHandshake(writer, new HandshakeFrame(FrameCodec.ProtocolVersion, Volume.VolumeId, 1, Volume.BlockSize, 1));
        FrameCodec.WriteCopy(writer, new CopyFrame(1, 1, 0, 0, 512), new byte[512]);
        FrameCodec.WriteWrite(writer, new WriteFrame(1, 1, 1, 0, 1), new byte[1]);
        FrameCodec.WriteCopy(writer, new CopyFrame(1, 1, 0, 0, 512), new byte[512]); // claims to follow 0, but 1 was sent
        await client.SendAsync(writer.WrittenMemory);
        var frames = await ReadAllAsync(client);
        Assert.Equal([FrameType.Handshake, FrameType.Ack, FrameType.Error], frames.Select(f => f.Type));
        Assert.Equal("AckFrame { Generation = 1, AppliedSequence = 1, FramesHandled = 2 }", frames[1].Fields);
        Assert.Contains("SequenceGap", frames[2].Fields);
        Assert.Contains("Copy frame follows sequence 0, but the stream is at 1", frames[2].Fields);
        Assert.Equal(2, handler.Events.Count);
    }

    [Fact]
    public async Task A_handler_that_does_not_resync_refuses_copies_clearly()
    {
        var handler = new WritesOnlyHandler();
        await using var listener = new DataPlaneListener(AnyLoopbackPort, Volume, handler).Start();
        await using var sender = await DataPlaneSender.ConnectAsync(listener.LocalEndPoint, Volume, 1, 1);
        await sender.SendWriteAsync(1, 1, 0, new byte[512]);
        await sender.SendCopyAsync(1, 0, new byte[512]);
        var e = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => sender.Completion.WaitAsync(Patience));
        Assert.Equal(DataPlaneErrorCode.HandlerFailed, e.Code);
        Assert.Contains("NotSupportedException", e.Message);
        Assert.Contains("OnCopyAsync", e.Message);
        Assert.Equal(1, sender.AcknowledgedSequence);
        Assert.Equal(1, sender.AcknowledgedFrames);
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

    /// <summary>Implements only what a handler must: copies and sync-completes get the default.</summary>
    private sealed class WritesOnlyHandler : IDataPlaneHandler
    {
        public ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>Records what it is handed; optionally blocks, fails, or claims an applied sequence.</summary>
    private sealed class RecordingHandler : IDataPlaneHandler
    {
        private int _gateCalls;
        private readonly ConcurrentDictionary<int, TaskCompletionSource> _gateEntered = new();

        /// <summary>Completes when the <paramref name="call"/>-th call (1-based, over the handler's life) has reached the gate.</summary>
        public Task GateEntered(int call) => GateSource(call).Task;

        private TaskCompletionSource GateSource(int call) =>
            _gateEntered.GetOrAdd(call, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        private async ValueTask PassGateAsync(CancellationToken cancellationToken)
        {
            FirstCallEntered.TrySetResult();
            GateSource(Interlocked.Increment(ref _gateCalls)).TrySetResult();
            if (Gate is { } gate)
                await gate.Task.WaitAsync(cancellationToken);
        }

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
            await PassGateAsync(cancellationToken);
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

        public async ValueTask OnCopyAsync(CopyFrame copy, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            await PassGateAsync(cancellationToken);
            Assert.Equal(copy.Length, data.Length);
            EventQueue.Enqueue($"C g{copy.Generation} e{copy.Epoch} after{copy.AfterSequence} @{copy.Offset} {data.Length}B #{Streams.Hash(data.Span):X}");
        }

        public ValueTask OnSyncCompleteAsync(SyncCompleteFrame syncComplete, CancellationToken cancellationToken)
        {
            EventQueue.Enqueue($"Y g{syncComplete.Generation} e{syncComplete.Epoch} after{syncComplete.AfterSequence}");
            return ValueTask.CompletedTask;
        }

        public void OnDisconnected(long generation, Exception? error) => Disconnected.TrySetResult((generation, error));
    }
}
