namespace McActors.DataPlane;

/// <summary>Frame types on the wire (byte 2 of every frame).</summary>
public enum FrameType : byte
{
    Handshake = 1,
    Write = 2,
    EpochMarker = 3,
    GuestState = 4,
    Ack = 5,
    Error = 6,
    Copy = 7,
    SyncComplete = 8,
}

/// <summary>Why a connection was refused or closed; carried by an error frame.</summary>
public enum DataPlaneErrorCode : uint
{
    Unspecified = 0,
    ProtocolVersionMismatch = 1,
    VolumeMismatch = 2,
    BlockSizeMismatch = 3,
    GenerationMismatch = 4,
    StaleGeneration = 5,
    ProtocolViolation = 6,
    SequenceGap = 7,
    Replaced = 8,
    HandlerFailed = 9,
    ShuttingDown = 10,
}

// The frames are record structs: decoding one allocates nothing. Bulk bytes (write data,
// guest-state blob) travel beside them as ReadOnlyMemory, never inside them.

/// <summary>Primary → secondary: <see cref="Length"/> bytes at byte <see cref="Offset"/> of the volume.</summary>
public readonly record struct WriteFrame(long Generation, long Epoch, long Sequence, long Offset, int Length);

/// <summary>Primary → secondary: epoch <see cref="Epoch"/> is closed; it held these many writes and bytes.</summary>
public readonly record struct EpochMarkerFrame(long Generation, long Epoch, long Sequence, long WritesInEpoch, long BytesInEpoch);

/// <summary>Primary → secondary: the guest's state at checkpoint <see cref="Epoch"/> (an opaque blob of <see cref="Length"/> bytes).</summary>
public readonly record struct GuestStateFrame(long Generation, long Epoch, long Sequence, int Length);

/// <summary>
/// Secondary → primary: every frame up to and including <see cref="AppliedSequence"/> was handled,
/// and so were the first <see cref="FramesHandled"/> stream frames of this connection, counted
/// since the handshake whatever their type, copies and sync-completes included (both cumulative).
/// The count is what frees the window: copies have no sequence of their own.
/// </summary>
public readonly record struct AckFrame(long Generation, long AppliedSequence, long FramesHandled);

/// <summary>
/// Primary → this secondary only, while it resyncs: <see cref="Length"/> bytes of the primary's
/// image at byte <see cref="Offset"/>, read in epoch <see cref="Epoch"/>. It has no sequence of its
/// own (sequences are shared by all secondaries): <see cref="AfterSequence"/> is the last sequence
/// sent before it on this connection, and it is handled after that frame and before the next.
/// </summary>
public readonly record struct CopyFrame(long Generation, long Epoch, long AfterSequence, long Offset, int Length);

/// <summary>
/// Primary → this secondary only: every chunk that differed has been sent (before this frame);
/// from checkpoint <see cref="Epoch"/> on the secondary's image is the primary's.
/// <see cref="AfterSequence"/> as for <see cref="CopyFrame"/>.
/// </summary>
public readonly record struct SyncCompleteFrame(long Generation, long Epoch, long AfterSequence);

/// <summary>Either way: the sender is closing the connection for this reason.</summary>
public sealed record ErrorFrame(long Generation, DataPlaneErrorCode Code, string Reason);

/// <summary>
/// First frame each way. From the primary, <see cref="Sequence"/> is the first sequence it will
/// send; from the secondary, it is the last sequence its handler has applied (where a restarted
/// stream can resume).
/// </summary>
public readonly record struct HandshakeFrame(int ProtocolVersion, Guid VolumeId, long Generation, int BlockSize, long Sequence);

/// <summary>Which volume a data-plane connection replicates; both ends must agree.</summary>
public sealed record DataPlaneVolume(Guid VolumeId, int BlockSize);
