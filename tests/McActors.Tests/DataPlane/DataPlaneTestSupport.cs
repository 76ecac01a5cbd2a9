using System.Buffers;
using System.IO.Hashing;
using McActors.DataPlane;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace McActors.Tests.DataPlane;

/// <summary>A decoded frame copied out of the buffer, comparable by value.</summary>
internal sealed record FrameRecord(FrameType Type, long Generation, long Epoch, long Sequence, string Fields, string PayloadHex)
{
    public static FrameRecord From(in DecodedFrame frame)
    {
        var fields = frame.Type switch
        {
            FrameType.Write => frame.AsWrite().ToString(),
            FrameType.EpochMarker => frame.AsMarker().ToString(),
            FrameType.GuestState => frame.AsGuestState().ToString(),
            FrameType.Ack => frame.AsAck().ToString(),
            FrameType.Handshake => frame.AsHandshake().ToString(),
            FrameType.Error => $"{frame.ToError().Code}/{frame.ToError().Reason}",
            FrameType.Copy => frame.AsCopy().ToString(),
            FrameType.SyncComplete => frame.AsSyncComplete().ToString(),
            _ => "?",
        };
        return new FrameRecord(frame.Type, frame.Generation, frame.Epoch, frame.Sequence, fields, Convert.ToHexString(frame.Payload.ToArray()));
    }
}

/// <summary>Builds byte streams of frames and splits them into multi-segment sequences.</summary>
internal static class Streams
{
    public static readonly Guid Volume = new("6d1f0a3e-27b4-4c59-9a7e-0c1d2e3f4a5b");

    /// <summary>One frame of every type, with payloads long enough to split inside.</summary>
    public static byte[] OneOfEach(out List<FrameRecord> expected)
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHandshake(writer, new HandshakeFrame(FrameCodec.ProtocolVersion, Volume, 7, 4096, 1));
        FrameCodec.WriteWrite(writer, new WriteFrame(7, 3, 1, 8192, 37), Bytes(37, 1));
        FrameCodec.WriteMarker(writer, new EpochMarkerFrame(7, 3, 2, 1, 37));
        FrameCodec.WriteGuestState(writer, new GuestStateFrame(7, 3, 3, 21), Bytes(21, 2));
        FrameCodec.WriteCopy(writer, new CopyFrame(7, 3, 3, 65536, 45), Bytes(45, 3));
        FrameCodec.WriteAck(writer, new AckFrame(7, 3, 4));
        FrameCodec.WriteError(writer, new ErrorFrame(7, DataPlaneErrorCode.StaleGeneration, "stale: é"));
        FrameCodec.WriteWrite(writer, new WriteFrame(7, 4, 4, 0, 0), ReadOnlySpan<byte>.Empty);
        FrameCodec.WriteSyncComplete(writer, new SyncCompleteFrame(7, 4, 4));
        var bytes = writer.WrittenSpan.ToArray();
        expected = DecodeAll(new ReadOnlySequence<byte>(bytes));
        return bytes;
    }

    public static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static List<FrameRecord> DecodeAll(ReadOnlySequence<byte> buffer, int maxPayload = FrameCodec.DefaultMaxPayloadBytes)
    {
        var decoder = new FrameDecoder(maxPayload);
        var frames = new List<FrameRecord>();
        while (decoder.TryDecode(ref buffer, out var frame))
            frames.Add(FrameRecord.From(frame));
        decoder.ThrowIfTruncated(buffer);
        return frames;
    }

    /// <summary>A sequence of several segments, cut at the given offsets.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var points = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().ToList();
        if (points.Count == 0)
            return new ReadOnlySequence<byte>(bytes);
        var first = new Segment(bytes.AsMemory(0, points[0]), 0);
        var last = first;
        for (var i = 0; i < points.Count; i++)
        {
            var end = i + 1 < points.Count ? points[i + 1] : bytes.Length;
            // A copy per segment: no segment can read past its own end by accident.
            last = last.Append(bytes.AsSpan(points[i], end - points[i]).ToArray());
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    public static ulong Hash(ReadOnlySpan<byte> data) => XxHash3.HashToUInt64(data);
}
