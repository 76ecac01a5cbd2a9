namespace McActors.DataPlane;

/// <summary>Tuning of one data-plane endpoint. Every bound here is also a memory bound (invariant 6).</summary>
public sealed record DataPlaneOptions
{
    /// <summary>Largest write or guest-state payload accepted; a larger declared length closes the connection.</summary>
    public int MaxPayloadBytes { get; init; } = FrameCodec.DefaultMaxPayloadBytes;

    /// <summary>Sender: unacknowledged bytes allowed in flight before a send waits (back-pressure to the guest).</summary>
    public long WindowBytes { get; init; } = 16 << 20;

    /// <summary>Receiver: acknowledge at least once per this many bytes handled, and at the end of each read.</summary>
    public int AckIntervalBytes { get; init; } = 1 << 20;

    /// <summary>Size of the pooled buffer segments the socket reads into and writes from (fewer, larger syscalls).</summary>
    public int SegmentBytes { get; init; } = 1 << 20;

    /// <summary>Sender: bytes queued for the socket before a send waits for the kernel to take them.</summary>
    public long SendBufferBytes { get; init; } = 4 << 20;

    /// <summary>How long either side waits for the other's handshake.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a closing side waits for its last frames (an error frame) to drain before resetting.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public static DataPlaneOptions Default { get; } = new();

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(MaxPayloadBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(WindowBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(AckIntervalBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(SegmentBytes, 4096);
        ArgumentOutOfRangeException.ThrowIfLessThan(SendBufferBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HandshakeTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(CloseTimeout, TimeSpan.Zero);
    }
}
