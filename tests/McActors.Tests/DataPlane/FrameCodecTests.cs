using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.IO.Pipelines;
using McActors.DataPlane;
using Xunit.Abstractions;

namespace McActors.Tests.DataPlane;

public sealed class FrameCodecTests(ITestOutputHelper output)
{
    [Fact]
    public void Every_frame_type_round_trips()
    {
        var writer = new ArrayBufferWriter<byte>();
        var data = Streams.Bytes(5000, 11);
        var blob = Streams.Bytes(300, 12);
        var hello = new HandshakeFrame(FrameCodec.ProtocolVersion, Streams.Volume, 9, 4096, 42);
        var write = new WriteFrame(9, 5, 42, 1L << 40, data.Length);
        var marker = new EpochMarkerFrame(9, 5, 43, 1, data.Length);
        var state = new GuestStateFrame(9, 5, 44, blob.Length);
        var ack = new AckFrame(9, 44, 1L << 50);
        var copyData = Streams.Bytes(4096, 13);
        var copy = new CopyFrame(9, 5, 44, 3L << 30, copyData.Length);
        var sync = new SyncCompleteFrame(9, 6, 44);
        var error = new ErrorFrame(9, DataPlaneErrorCode.VolumeMismatch, "volume id mismatch");
        Assert.Equal(FrameCodec.HeaderSize + 32 + FrameCodec.ChecksumSize, FrameCodec.WriteHandshake(writer, hello));
        Assert.Equal(FrameCodec.WriteFrameSize(data.Length), FrameCodec.WriteWrite(writer, write, data));
        Assert.Equal(FrameCodec.MarkerFrameSize, FrameCodec.WriteMarker(writer, marker));
        Assert.Equal(FrameCodec.GuestStateFrameSize(blob.Length), FrameCodec.WriteGuestState(writer, state, blob));
        Assert.Equal(FrameCodec.AckFrameSize, FrameCodec.WriteAck(writer, ack));
        FrameCodec.WriteError(writer, error);
        Assert.Equal(FrameCodec.CopyFrameSize(copyData.Length), FrameCodec.WriteCopy(writer, copy, copyData));
        Assert.Equal(FrameCodec.SyncCompleteFrameSize, FrameCodec.WriteSyncComplete(writer, sync));

        var buffer = new ReadOnlySequence<byte>(writer.WrittenMemory);
        var decoder = new FrameDecoder();
        DecodedFrame frame;
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(hello, frame.AsHandshake());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(write, frame.AsWrite());
        Assert.Equal(data, frame.Payload.ToArray());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(marker, frame.AsMarker());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(state, frame.AsGuestState());
        Assert.Equal(blob, frame.Payload.ToArray());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(ack, frame.AsAck());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(error, frame.ToError());
        Assert.Throws<InvalidOperationException>(() => frame.AsWrite());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(copy, frame.AsCopy());
        Assert.Equal(copyData, frame.Payload.ToArray());
        Assert.Throws<InvalidOperationException>(() => frame.AsWrite());
        Assert.True(decoder.TryDecode(ref buffer, out frame));
        Assert.Equal(sync, frame.AsSyncComplete());
        Assert.Throws<InvalidOperationException>(() => frame.AsCopy());
        Assert.True(buffer.IsEmpty);
        Assert.False(decoder.TryDecode(ref buffer, out _));
        Assert.Equal(writer.WrittenCount, decoder.StreamOffset);
    }

    [Fact]
    public void A_stream_split_at_every_byte_boundary_decodes_the_same()
    {
        var bytes = Streams.OneOfEach(out var expected);
        Assert.Equal(9, expected.Count);
        for (var cut = 0; cut <= bytes.Length; cut++)
            Assert.Equal(expected, Streams.DecodeAll(Streams.Split(bytes, cut)));
    }

    [Fact]
    public void A_stream_split_into_many_random_segments_decodes_the_same()
    {
        var bytes = Streams.OneOfEach(out var expected);
        Seeds.Run(200, seed =>
        {
            var random = new Random(seed);
            var cuts = Enumerable.Range(0, random.Next(1, 40)).Select(_ => random.Next(bytes.Length)).ToArray();
            Assert.Equal(expected, Streams.DecodeAll(Streams.Split(bytes, cuts)));
        }, output);
    }

    [Fact]
    public void Every_prefix_asks_for_more_and_then_decodes_once_complete()
    {
        // Incremental decoding as a reader sees it: each prefix yields the whole frames it holds, no more.
        var bytes = Streams.OneOfEach(out var expected);
        var boundaries = new List<int>();
        var probe = new ReadOnlySequence<byte>(bytes);
        var probeDecoder = new FrameDecoder();
        while (probeDecoder.TryDecode(ref probe, out _))
            boundaries.Add((int)probeDecoder.StreamOffset);
        for (var length = 0; length <= bytes.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            var decoder = new FrameDecoder();
            var count = 0;
            while (decoder.TryDecode(ref buffer, out _))
                count++;
            Assert.Equal(boundaries.Count(b => b <= length), count);
        }
    }

    [Fact]
    public async Task Frames_fed_through_a_pipe_in_random_chunks_decode_in_order()
    {
        var one = Streams.OneOfEach(out var oneExpected);
        var bytes = Enumerable.Repeat(one, 20).SelectMany(b => b).ToArray();
        var expected = Enumerable.Repeat(oneExpected, 20).SelectMany(f => f).ToList();
        var seeds = new List<int>();
        Seeds.Run(20, seeds.Add, output);
        foreach (var seed in seeds)
        {
            var random = new Random(seed);
            // Tiny segments: nearly every frame straddles several of them.
            var pipe = new Pipe(new PipeOptions(minimumSegmentSize: 16, pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 1 << 19));
            var reading = DecodePipeAsync(pipe.Reader);
            for (var at = 0; at < bytes.Length;)
            {
                var chunk = Math.Min(random.Next(1, 64), bytes.Length - at);
                await pipe.Writer.WriteAsync(bytes.AsMemory(at, chunk));
                at += chunk;
            }
            await pipe.Writer.CompleteAsync();
            var decoded = await reading.WaitAsync(TimeSpan.FromSeconds(5));
            Assert.True(expected.SequenceEqual(decoded), $"seed {seed}: decoded frames differ");
        }
    }

    private static async Task<List<FrameRecord>> DecodePipeAsync(PipeReader reader)
    {
        var decoder = new FrameDecoder();
        var frames = new List<FrameRecord>();
        while (true)
        {
            var result = await reader.ReadAsync();
            var buffer = result.Buffer;
            while (decoder.TryDecode(ref buffer, out var frame))
                frames.Add(FrameRecord.From(frame));
            if (result.IsCompleted)
            {
                decoder.ThrowIfTruncated(buffer);
                reader.AdvanceTo(buffer.End);
                await reader.CompleteAsync();
                return frames;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    [Fact]
    public void Bad_magic_is_named_with_its_offset()
    {
        var bytes = TwoWrites(out var secondAt);
        bytes[secondAt] = (byte)'X';
        var e = Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes)));
        Assert.Contains("bad frame magic", e.Message);
        Assert.Equal(secondAt, e.StreamOffset);
        Assert.Contains($"offset {secondAt}", e.Message);
    }

    [Fact]
    public void Unknown_type_and_flags_are_refused()
    {
        var bytes = TwoWrites(out _);
        bytes[2] = 99;
        Assert.Contains("unknown frame type 99", Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes))).Message);
        bytes = TwoWrites(out _);
        bytes[3] = 1;
        Assert.Contains("unknown flags", Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes))).Message);
    }

    [Fact]
    public void A_length_over_the_limit_is_refused_from_the_header_alone()
    {
        // Only a header: the decoder must not wait for (or allocate) the 2 GiB it announces.
        var header = new byte[FrameCodec.HeaderSize];
        "MD"u8.CopyTo(header);
        header[2] = (byte)FrameType.Write;
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 0x8000_0000);
        var buffer = new ReadOnlySequence<byte>(header);
        var e = Assert.Throws<DataPlaneProtocolException>(() => new FrameDecoder(1 << 20).TryDecode(ref buffer, out _));
        Assert.Contains("exceeds the limit", e.Message);
        Assert.Equal(0, e.StreamOffset);
    }

    [Fact]
    public void The_payload_limit_is_configurable()
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteWrite(writer, new WriteFrame(1, 1, 1, 0, 4097), new byte[4097]);
        Assert.Single(Streams.DecodeAll(new ReadOnlySequence<byte>(writer.WrittenMemory), maxPayload: 4097));
        Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(writer.WrittenMemory), maxPayload: 4096));
    }

    [Fact]
    public void A_flipped_payload_bit_fails_the_checksum()
    {
        var bytes = TwoWrites(out var secondAt);
        bytes[secondAt + 50] ^= 0x10;
        var e = Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes)));
        Assert.Contains("checksum mismatch", e.Message);
        Assert.Equal(secondAt, e.StreamOffset);
    }

    [Fact]
    public void A_stream_cut_inside_a_frame_is_truncated()
    {
        var bytes = TwoWrites(out var secondAt);
        var cut = new ReadOnlySequence<byte>(bytes, 0, secondAt + 10);
        var e = Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(cut));
        Assert.Contains("stream ended inside a frame", e.Message);
        Assert.Equal(secondAt, e.StreamOffset);
    }

    [Fact]
    public void A_handshake_without_its_magic_is_refused()
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHandshake(writer, new HandshakeFrame(1, Streams.Volume, 1, 4096, 1));
        var bytes = writer.WrittenSpan.ToArray();
        bytes[FrameCodec.HeaderSize] = (byte)'X';
        Rehash(bytes);
        Assert.Contains("MCDP", Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes))).Message);
    }

    [Fact]
    public void Fixed_size_frames_must_have_their_exact_size()
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteMarker(writer, new EpochMarkerFrame(1, 1, 1, 0, 0));
        var bytes = writer.WrittenSpan.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 17);
        Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes)));
    }

    [Fact]
    public void Copy_sync_complete_and_ack_frames_are_checked_like_the_others()
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteCopy(writer, new CopyFrame(1, 1, 0, 0, 4097), new byte[4097]);
        Assert.Single(Streams.DecodeAll(new ReadOnlySequence<byte>(writer.WrittenMemory), maxPayload: 4097));
        Assert.Contains("exceeds the limit", Assert.Throws<DataPlaneProtocolException>(() =>
            Streams.DecodeAll(new ReadOnlySequence<byte>(writer.WrittenMemory), maxPayload: 4096)).Message);

        // An offset past long.MaxValue, with a valid checksum: refused by range, not by checksum.
        var bytes = writer.WrittenSpan.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(FrameCodec.HeaderSize), ulong.MaxValue);
        Rehash(bytes);
        Assert.Contains("copy offset", Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes))).Message);

        // Fixed-size frames: a sync-complete with a body, an ack without its frame count.
        writer.Clear();
        FrameCodec.WriteSyncComplete(writer, new SyncCompleteFrame(1, 1, 0));
        bytes = writer.WrittenSpan.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 8);
        Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes)));
        writer.Clear();
        FrameCodec.WriteAck(writer, new AckFrame(1, 1, 1));
        bytes = writer.WrittenSpan.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 0);
        Assert.Throws<DataPlaneProtocolException>(() => Streams.DecodeAll(new ReadOnlySequence<byte>(bytes)));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameCodec.WriteAck(writer, new AckFrame(1, 1, -1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameCodec.WriteCopy(writer, new CopyFrame(1, 1, 0, -512, 0), []));
    }

    [Fact]
    public void Error_reasons_are_capped()
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteError(writer, new ErrorFrame(1, DataPlaneErrorCode.ProtocolViolation, new string('é', 5000)));
        var buffer = new ReadOnlySequence<byte>(writer.WrittenMemory);
        Assert.True(new FrameDecoder().TryDecode(ref buffer, out var frame));
        Assert.Equal(new string('é', FrameCodec.MaxReasonBytes / 2), frame.ToError().Reason);
    }

    private static byte[] TwoWrites(out int secondAt)
    {
        var writer = new ArrayBufferWriter<byte>();
        secondAt = FrameCodec.WriteWrite(writer, new WriteFrame(1, 1, 1, 0, 100), Streams.Bytes(100, 1));
        FrameCodec.WriteWrite(writer, new WriteFrame(1, 1, 2, 4096, 100), Streams.Bytes(100, 2));
        return writer.WrittenSpan.ToArray();
    }

    private static void Rehash(byte[] frame)
    {
        var hashed = frame.Length - FrameCodec.ChecksumSize;
        BinaryPrimitives.WriteUInt64LittleEndian(frame.AsSpan(hashed), XxHash3.HashToUInt64(frame.AsSpan(0, hashed)));
    }
}
