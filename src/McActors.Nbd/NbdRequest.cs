using System.Buffers;
using System.Buffers.Binary;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd;

/// <summary>A transmission request header (28 bytes, big-endian).</summary>
internal readonly record struct NbdRequest(uint Magic, ushort Flags, ushort Type, ulong Handle, ulong Offset, uint Length)
{
    public static NbdRequest Parse(ReadOnlySequence<byte> header)
    {
        Span<byte> h = stackalloc byte[RequestHeaderSize];
        header.CopyTo(h);
        return new NbdRequest(
            BinaryPrimitives.ReadUInt32BigEndian(h),
            BinaryPrimitives.ReadUInt16BigEndian(h[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(h[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(h[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(h[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(h[24..]));
    }

    /// <summary>The NBD error for this request if it must not reach an export of <paramref name="size"/> bytes, or 0 if it may.</summary>
    public uint Check(long size, NbdOptions options)
    {
        var (allowedFlags, beyondEnd) = Type switch
        {
            CmdRead => (0, EInval),
            CmdWrite => (CmdFlagFua, ENoSpc),
            CmdFlush => (0, 0u),
            CmdTrim => (CmdFlagFua, EInval),
            CmdWriteZeroes => (CmdFlagFua | CmdFlagNoHole, ENoSpc),
            _ => (-1, EInval),
        };
        if (allowedFlags < 0 || (Flags & ~allowedFlags) != 0)
            return EInval; // unknown command, or a flag not negotiated for it
        if (Type == CmdFlush)
            return 0;
        if (Type is CmdRead or CmdWrite && Length > options.MaxPayloadBytes)
            return EInval;
        if (Offset > (ulong)size || Length > (ulong)size - Offset)
            return beyondEnd;
        var mask = (ulong)options.MinBlockSize - 1;
        if ((Offset & mask) != 0 || (Length & mask) != 0)
            return EInval;
        return 0;
    }
}

/// <summary>A request read and not yet answered; <see cref="Bytes"/> is its share of the budget (null: not admitted).</summary>
internal sealed class InFlightRequest(ulong handle, long? bytes)
{
    private int _claimed;

    public ulong Handle { get; } = handle;

    public long? Bytes { get; } = bytes;

    /// <summary>True for the one caller that may answer it.</summary>
    public bool Claim() => Interlocked.Exchange(ref _claimed, 1) == 0;
}
