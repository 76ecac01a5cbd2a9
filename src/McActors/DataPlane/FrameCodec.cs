using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace McActors.DataPlane;

/// <summary>
/// Wire format of the data plane, all integers little-endian:
/// <code>
/// 0   4  tag: 'M' 'D' type flags(0)
/// 4   4  body length: type fields + payload (not header, not checksum)
/// 8   8  generation
/// 16  8  epoch
/// 24  8  sequence      Copy, SyncComplete: the last sequence sent before them (they have none)
/// 32  -  type fields   Handshake: "MCDP", u32 version, 16 B volume id, u32 block size, u32 0 (32 B)
///                      Write, Copy: u64 offset (8 B)     EpochMarker: u64 writes, u64 bytes (16 B)
///                      Ack: u64 frames handled (8 B)    Error: u32 code (4 B)
///                      GuestState, SyncComplete: none
///     -  payload       Write, Copy: data; GuestState: blob; Error: UTF-8 reason; others: none
/// end 8  XxHash3-64 of everything before it (header + body)
/// </code>
/// Version 2 added Copy, SyncComplete and the Ack's frame count (see DataPlane/README.md, "Resync").
/// Checksum choice: XxHash3-64 rather than CRC-32. Every replicated byte is hashed twice (send and
/// receive) on the write path, and XxHash3 runs at memory bandwidth where System.IO.Hashing's
/// CRC-32 (IEEE; it has no CRC-32C) is several times slower; 64 bits also make an undetected
/// corruption negligible over billions of frames. TCP already catches line errors; this catches
/// bugs, memory corruption and a peer that is not what it claims.
/// </summary>
public static class FrameCodec
{
    public const int HeaderSize = 32;
    public const int ChecksumSize = 8;
    public const int ProtocolVersion = 2;

    /// <summary>Default cap on a frame's payload, so a hostile length cannot make us allocate gigabytes.</summary>
    public const int DefaultMaxPayloadBytes = 32 << 20;

    /// <summary>Error reasons are cut to this many bytes: they are for humans, not for bulk data.</summary>
    public const int MaxReasonBytes = 1024;

    internal const byte Tag0 = (byte)'M';
    internal const byte Tag1 = (byte)'D';
    internal const int HandshakeFieldsSize = 32;
    internal const int WriteFieldsSize = 8;
    internal const int MarkerFieldsSize = 16;
    internal const int ErrorFieldsSize = 4;
    internal const int CopyFieldsSize = 8;
    internal const int AckFieldsSize = 8;

    /// <summary>"MCDP": the handshake's own magic, so a stray client is told what it reached.</summary>
    public static ReadOnlySpan<byte> HandshakeMagic => "MCDP"u8;

    /// <summary>Bytes a write frame of <paramref name="dataLength"/> bytes occupies on the wire.</summary>
    public static int WriteFrameSize(int dataLength) => HeaderSize + WriteFieldsSize + dataLength + ChecksumSize;

    public static int MarkerFrameSize => HeaderSize + MarkerFieldsSize + ChecksumSize;

    public static int GuestStateFrameSize(int blobLength) => HeaderSize + blobLength + ChecksumSize;

    public static int AckFrameSize => HeaderSize + AckFieldsSize + ChecksumSize;

    /// <summary>Bytes a copy frame of <paramref name="dataLength"/> bytes occupies on the wire.</summary>
    public static int CopyFrameSize(int dataLength) => HeaderSize + CopyFieldsSize + dataLength + ChecksumSize;

    public static int SyncCompleteFrameSize => HeaderSize + ChecksumSize;

    /// <summary>Size of the fixed type fields, or -1 for an unknown type.</summary>
    internal static int FieldsSize(FrameType type) => type switch
    {
        FrameType.Handshake => HandshakeFieldsSize,
        FrameType.Write => WriteFieldsSize,
        FrameType.EpochMarker => MarkerFieldsSize,
        FrameType.GuestState => 0,
        FrameType.Ack => AckFieldsSize,
        FrameType.Error => ErrorFieldsSize,
        FrameType.Copy => CopyFieldsSize,
        FrameType.SyncComplete => 0,
        _ => -1,
    };

    internal static bool HasPayload(FrameType type) => type is FrameType.Write or FrameType.GuestState or FrameType.Error or FrameType.Copy;

    public static int WriteHandshake(IBufferWriter<byte> writer, in HandshakeFrame frame)
    {
        var span = Begin(writer, FrameType.Handshake, HandshakeFieldsSize, frame.Generation, 0, frame.Sequence, out var size);
        var fields = span[HeaderSize..];
        HandshakeMagic.CopyTo(fields);
        BinaryPrimitives.WriteInt32LittleEndian(fields[4..], frame.ProtocolVersion);
        frame.VolumeId.TryWriteBytes(fields[8..24]);
        BinaryPrimitives.WriteInt32LittleEndian(fields[24..], frame.BlockSize);
        BinaryPrimitives.WriteInt32LittleEndian(fields[28..], 0);
        return End(writer, span, size);
    }

    public static int WriteWrite(IBufferWriter<byte> writer, in WriteFrame frame, ReadOnlySpan<byte> data)
    {
        var span = Begin(writer, FrameType.Write, WriteFieldsSize + data.Length, frame.Generation, frame.Epoch, frame.Sequence, out var size);
        BinaryPrimitives.WriteInt64LittleEndian(span[HeaderSize..], frame.Offset);
        data.CopyTo(span[(HeaderSize + WriteFieldsSize)..]);
        return End(writer, span, size);
    }

    public static int WriteMarker(IBufferWriter<byte> writer, in EpochMarkerFrame frame)
    {
        var span = Begin(writer, FrameType.EpochMarker, MarkerFieldsSize, frame.Generation, frame.Epoch, frame.Sequence, out var size);
        BinaryPrimitives.WriteInt64LittleEndian(span[HeaderSize..], frame.WritesInEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(span[(HeaderSize + 8)..], frame.BytesInEpoch);
        return End(writer, span, size);
    }

    public static int WriteGuestState(IBufferWriter<byte> writer, in GuestStateFrame frame, ReadOnlySpan<byte> blob)
    {
        var span = Begin(writer, FrameType.GuestState, blob.Length, frame.Generation, frame.Epoch, frame.Sequence, out var size);
        blob.CopyTo(span[HeaderSize..]);
        return End(writer, span, size);
    }

    public static int WriteAck(IBufferWriter<byte> writer, in AckFrame frame)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frame.FramesHandled);
        var span = Begin(writer, FrameType.Ack, AckFieldsSize, frame.Generation, 0, frame.AppliedSequence, out var size);
        BinaryPrimitives.WriteInt64LittleEndian(span[HeaderSize..], frame.FramesHandled);
        return End(writer, span, size);
    }

    public static int WriteCopy(IBufferWriter<byte> writer, in CopyFrame frame, ReadOnlySpan<byte> data)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frame.Offset);
        var span = Begin(writer, FrameType.Copy, CopyFieldsSize + data.Length, frame.Generation, frame.Epoch, frame.AfterSequence, out var size);
        BinaryPrimitives.WriteInt64LittleEndian(span[HeaderSize..], frame.Offset);
        data.CopyTo(span[(HeaderSize + CopyFieldsSize)..]);
        return End(writer, span, size);
    }

    public static int WriteSyncComplete(IBufferWriter<byte> writer, in SyncCompleteFrame frame)
    {
        var span = Begin(writer, FrameType.SyncComplete, 0, frame.Generation, frame.Epoch, frame.AfterSequence, out var size);
        return End(writer, span, size);
    }

    public static int WriteError(IBufferWriter<byte> writer, ErrorFrame frame)
    {
        // Cut the reason at a character boundary below the cap; errors are rare, allocation is fine.
        var reason = frame.Reason;
        var bytes = Encoding.UTF8.GetBytes(reason);
        var length = Math.Min(bytes.Length, MaxReasonBytes);
        while (length < bytes.Length && length > 0 && (bytes[length] & 0xC0) == 0x80)
            length--;
        var span = Begin(writer, FrameType.Error, ErrorFieldsSize + length, frame.Generation, 0, 0, out var size);
        BinaryPrimitives.WriteUInt32LittleEndian(span[HeaderSize..], (uint)frame.Code);
        bytes.AsSpan(0, length).CopyTo(span[(HeaderSize + ErrorFieldsSize)..]);
        return End(writer, span, size);
    }

    private static Span<byte> Begin(IBufferWriter<byte> writer, FrameType type, int bodyLength, long generation, long epoch, long sequence, out int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        size = HeaderSize + bodyLength + ChecksumSize;
        // One contiguous span per frame: the checksum is then a single one-shot hash.
        var span = writer.GetSpan(size)[..size];
        span[0] = Tag0;
        span[1] = Tag1;
        span[2] = (byte)type;
        span[3] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], bodyLength);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], generation);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], epoch);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], sequence);
        return span;
    }

    private static int End(IBufferWriter<byte> writer, Span<byte> span, int size)
    {
        var hashed = size - ChecksumSize;
        BinaryPrimitives.WriteUInt64LittleEndian(span[hashed..], XxHash3.HashToUInt64(span[..hashed]));
        writer.Advance(size);
        return size;
    }
}

/// <summary>
/// One frame as decoded from a buffer. <see cref="Payload"/> is a slice of the reader's buffer:
/// it is valid only until the reader advances past it (for a handler: until its call returns).
/// </summary>
public readonly struct DecodedFrame
{
    internal DecodedFrame(FrameType type, long generation, long epoch, long sequence, long field1, long field2, Guid volumeId, ReadOnlySequence<byte> payload, int wireSize)
    {
        Type = type;
        Generation = generation;
        Epoch = epoch;
        Sequence = sequence;
        Field1 = field1;
        Field2 = field2;
        VolumeId = volumeId;
        Payload = payload;
        WireSize = wireSize;
    }

    public FrameType Type { get; }
    public long Generation { get; }
    public long Epoch { get; }
    public long Sequence { get; }

    // Type fields: Write and Copy (offset, -), EpochMarker (writes, bytes), Handshake (version, block size),
    // Ack (frames handled, -), Error (code, -).
    internal long Field1 { get; }
    internal long Field2 { get; }
    internal Guid VolumeId { get; }

    public ReadOnlySequence<byte> Payload { get; }

    /// <summary>Bytes the frame occupied on the wire, header and checksum included.</summary>
    public int WireSize { get; }

    public WriteFrame AsWrite() => Is(FrameType.Write, new WriteFrame(Generation, Epoch, Sequence, Field1, (int)Payload.Length));

    public EpochMarkerFrame AsMarker() => Is(FrameType.EpochMarker, new EpochMarkerFrame(Generation, Epoch, Sequence, Field1, Field2));

    public GuestStateFrame AsGuestState() => Is(FrameType.GuestState, new GuestStateFrame(Generation, Epoch, Sequence, (int)Payload.Length));

    public AckFrame AsAck() => Is(FrameType.Ack, new AckFrame(Generation, Sequence, Field1));

    public CopyFrame AsCopy() => Is(FrameType.Copy, new CopyFrame(Generation, Epoch, Sequence, Field1, (int)Payload.Length));

    public SyncCompleteFrame AsSyncComplete() => Is(FrameType.SyncComplete, new SyncCompleteFrame(Generation, Epoch, Sequence));

    public HandshakeFrame AsHandshake() => Is(FrameType.Handshake, new HandshakeFrame((int)Field1, VolumeId, Generation, (int)Field2, Sequence));

    public ErrorFrame ToError() => Is(FrameType.Error, new ErrorFrame(Generation, (DataPlaneErrorCode)Field1, Encoding.UTF8.GetString(Payload)));

    private T Is<T>(FrameType expected, T value) =>
        Type == expected ? value : throw new InvalidOperationException($"frame is {Type}, not {expected}");
}

/// <summary>
/// Incremental decoder for one connection's stream: call <see cref="TryDecode"/> on the bytes
/// read so far; it takes one whole frame off the front or asks for more. Every malformed input
/// raises <see cref="DataPlaneProtocolException"/> naming the problem and the stream offset;
/// nothing is allocated in proportion to a length before that length has been checked.
/// </summary>
public sealed class FrameDecoder
{
    private readonly int _maxPayloadBytes;
    private readonly XxHash3 _hasher = new();

    public FrameDecoder(int maxPayloadBytes = FrameCodec.DefaultMaxPayloadBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxPayloadBytes);
        _maxPayloadBytes = maxPayloadBytes;
    }

    /// <summary>Bytes of the stream consumed by the frames decoded so far.</summary>
    public long StreamOffset { get; private set; }

    /// <summary>
    /// Takes one frame off the front of <paramref name="buffer"/> (which is sliced past it), or
    /// returns false if the buffer does not hold a whole frame yet.
    /// </summary>
    public bool TryDecode(ref ReadOnlySequence<byte> buffer, out DecodedFrame frame)
    {
        frame = default;
        Span<byte> scratch = stackalloc byte[FrameCodec.HeaderSize];
        // The tag is checked as soon as it is there: a stray client (say, an HTTP request shorter
        // than a header) is refused at once instead of waiting for bytes that never come.
        var available = (int)Math.Min(buffer.Length, FrameCodec.HeaderSize);
        if (available == 0)
            return false;
        var header = Contiguous(buffer, 0, available, scratch);
        if (header[0] != FrameCodec.Tag0 || (available > 1 && header[1] != FrameCodec.Tag1))
            throw Error(available > 1 ? $"bad frame magic 0x{header[0]:X2}{header[1]:X2} (expected \"MD\")" : $"bad frame magic 0x{header[0]:X2}");
        if (available < 3)
            return false;
        var type = (FrameType)header[2];
        var fieldsSize = FrameCodec.FieldsSize(type);
        if (fieldsSize < 0)
            throw Error($"unknown frame type {header[2]}");
        if (available < 4)
            return false;
        if (header[3] != 0)
            throw Error($"unknown flags 0x{header[3]:X2} on {type} frame");
        if (available < FrameCodec.HeaderSize)
            return false;
        var bodyLength = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        var maxBody = (long)fieldsSize + (FrameCodec.HasPayload(type) ? _maxPayloadBytes : 0);
        if (bodyLength < fieldsSize || bodyLength > maxBody)
            throw Error(bodyLength > maxBody && FrameCodec.HasPayload(type)
                ? $"{type} frame body of {bodyLength} B exceeds the limit of {maxBody} B"
                : $"{type} frame body of {bodyLength} B, expected {(FrameCodec.HasPayload(type) ? "at least " : "")}{fieldsSize} B");
        var generation = ReadNonNegative(header[8..], "generation");
        var epoch = ReadNonNegative(header[16..], "epoch");
        var sequence = ReadNonNegative(header[24..], "sequence");

        var wireSize = FrameCodec.HeaderSize + (long)bodyLength + FrameCodec.ChecksumSize;
        if (buffer.Length < wireSize)
            return false;

        var hashedLength = wireSize - FrameCodec.ChecksumSize;
        var expected = BinaryPrimitives.ReadUInt64LittleEndian(Contiguous(buffer, hashedLength, FrameCodec.ChecksumSize, scratch));
        var actual = Hash(buffer.Slice(0, hashedLength));
        if (expected != actual)
            throw Error($"checksum mismatch on {type} frame of {wireSize} B (sequence {sequence})");

        long field1 = 0, field2 = 0;
        var volumeId = Guid.Empty;
        var fields = Contiguous(buffer, FrameCodec.HeaderSize, fieldsSize, scratch);
        switch (type)
        {
            case FrameType.Handshake:
                if (!fields[..4].SequenceEqual(FrameCodec.HandshakeMagic))
                    throw Error("handshake magic is not \"MCDP\"");
                field1 = BinaryPrimitives.ReadInt32LittleEndian(fields[4..]);
                volumeId = new Guid(fields[8..24]);
                field2 = BinaryPrimitives.ReadInt32LittleEndian(fields[24..]);
                break;
            case FrameType.Write:
                field1 = ReadNonNegative(fields, "write offset");
                break;
            case FrameType.Copy:
                field1 = ReadNonNegative(fields, "copy offset");
                break;
            case FrameType.Ack:
                field1 = ReadNonNegative(fields, "frames handled");
                break;
            case FrameType.EpochMarker:
                field1 = ReadNonNegative(fields, "writes in epoch");
                field2 = ReadNonNegative(fields[8..], "bytes in epoch");
                break;
            case FrameType.Error:
                field1 = BinaryPrimitives.ReadUInt32LittleEndian(fields);
                break;
        }

        var payload = buffer.Slice(FrameCodec.HeaderSize + fieldsSize, bodyLength - fieldsSize);
        frame = new DecodedFrame(type, generation, epoch, sequence, field1, field2, volumeId, payload, (int)wireSize);
        buffer = buffer.Slice(wireSize);
        StreamOffset += wireSize;
        return true;

        long ReadNonNegative(ReadOnlySpan<byte> source, string what)
        {
            var value = BinaryPrimitives.ReadUInt64LittleEndian(source);
            return value <= long.MaxValue ? (long)value : throw Error($"{what} {value} out of range on {type} frame");
        }
    }

    /// <summary>At end of stream: throws if <paramref name="remaining"/> holds the start of a frame.</summary>
    public void ThrowIfTruncated(in ReadOnlySequence<byte> remaining)
    {
        if (remaining.IsEmpty)
            return;
        var copy = remaining;
        // Decoding first reports a bad header as such rather than as a truncation.
        if (TryDecode(ref copy, out _))
            return;
        throw Error($"stream ended inside a frame ({remaining.Length} B of it received)");
    }

    private DataPlaneProtocolException Error(string detail) => new(detail, StreamOffset);

    private ulong Hash(ReadOnlySequence<byte> bytes)
    {
        if (bytes.IsSingleSegment)
            return XxHash3.HashToUInt64(bytes.FirstSpan);
        _hasher.Reset();
        foreach (var segment in bytes)
            _hasher.Append(segment.Span);
        return _hasher.GetCurrentHashAsUInt64();
    }

    private static ReadOnlySpan<byte> Contiguous(in ReadOnlySequence<byte> buffer, long start, int length, Span<byte> scratch)
    {
        var slice = buffer.Slice(start, length);
        if (slice.FirstSpan.Length >= length)
            return slice.FirstSpan[..length];
        slice.CopyTo(scratch);
        return scratch[..length];
    }
}
