namespace McActors.Nbd;

/// <summary>The wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), fixed newstyle only.</summary>
public static class NbdProtocol
{
    // ---- handshake ----
    public const ulong InitMagic = 0x4e42444d41474943; // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054; // "IHAVEOPT"
    public const ulong OptionReplyMagic = 0x0003e889045565a9;

    public const ushort FlagFixedNewstyle = 1 << 0;
    public const ushort FlagNoZeroes = 1 << 1;
    public const uint ClientFlagFixedNewstyle = 1 << 0;
    public const uint ClientFlagNoZeroes = 1 << 1;

    public const uint OptExportName = 1;
    public const uint OptAbort = 2;
    public const uint OptList = 3;
    public const uint OptStartTls = 5;
    public const uint OptInfo = 6;
    public const uint OptGo = 7;
    public const uint OptStructuredReply = 8;

    public const uint RepAck = 1;
    public const uint RepServer = 2;
    public const uint RepInfo = 3;
    public const uint RepFlagError = 1u << 31;
    public const uint RepErrUnsup = RepFlagError | 1;
    public const uint RepErrPolicy = RepFlagError | 2;
    public const uint RepErrInvalid = RepFlagError | 3;
    public const uint RepErrUnknown = RepFlagError | 6;
    public const uint RepErrShutdown = RepFlagError | 7;
    public const uint RepErrTooBig = RepFlagError | 9;

    public const ushort InfoExport = 0;
    public const ushort InfoName = 1;
    public const ushort InfoDescription = 2;
    public const ushort InfoBlockSize = 3;

    // ---- transmission ----
    public const ushort TransHasFlags = 1 << 0;
    public const ushort TransReadOnly = 1 << 1;
    public const ushort TransSendFlush = 1 << 2;
    public const ushort TransSendFua = 1 << 3;
    public const ushort TransSendTrim = 1 << 5;
    public const ushort TransSendWriteZeroes = 1 << 6;
    public const ushort TransCanMultiConn = 1 << 8;

    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const int RequestHeaderSize = 28;
    public const int SimpleReplyHeaderSize = 16;

    public const ushort CmdRead = 0;
    public const ushort CmdWrite = 1;
    public const ushort CmdDisc = 2;
    public const ushort CmdFlush = 3;
    public const ushort CmdTrim = 4;
    public const ushort CmdWriteZeroes = 6;

    public const ushort CmdFlagFua = 1 << 0;
    public const ushort CmdFlagNoHole = 1 << 1;

    // Errors of a simple reply (Linux errno values, as the spec fixes them).
    public const uint EPerm = 1;
    public const uint EIo = 5;
    public const uint ENoMem = 12;
    public const uint EInval = 22;
    public const uint ENoSpc = 28;
    public const uint EOverflow = 75;
    public const uint ENotSup = 95;
    public const uint EShutdown = 108;
}
