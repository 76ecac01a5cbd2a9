namespace McActors.DataPlane;

/// <summary>Base of every error the data plane raises on its own account.</summary>
public class DataPlaneException : Exception
{
    public DataPlaneException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// The byte stream is not a valid data-plane stream: bad magic, unknown type, a length over the
/// limit, a checksum mismatch, a truncated frame or a frame that breaks the protocol's rules.
/// The connection cannot be trusted past this point and is closed.
/// </summary>
public sealed class DataPlaneProtocolException : DataPlaneException
{
    public DataPlaneProtocolException(string detail, long streamOffset)
        : base($"data-plane protocol error at stream offset {streamOffset}: {detail}")
    {
        Detail = detail;
        StreamOffset = streamOffset;
    }

    /// <summary>What was wrong, without the offset.</summary>
    public string Detail { get; }

    /// <summary>Byte offset in the connection's stream of the first byte of the offending frame.</summary>
    public long StreamOffset { get; }
}

/// <summary>
/// One side refused the other (handshake mismatch, stale generation, replaced by a newer
/// primary, handler failure...). When raised on the side that received an error frame,
/// <see cref="Remote"/> is true and the message is the peer's.
/// </summary>
public sealed class DataPlaneRefusedException : DataPlaneException
{
    public DataPlaneRefusedException(DataPlaneErrorCode code, string reason, bool remote = false, Exception? inner = null)
        : base(remote ? $"peer refused the data-plane connection ({code}): {reason}" : $"{code}: {reason}", inner)
    {
        Code = code;
        Reason = reason;
        Remote = remote;
    }

    public DataPlaneErrorCode Code { get; }

    public string Reason { get; }

    /// <summary>True if this came from the peer's error frame.</summary>
    public bool Remote { get; }
}

/// <summary>The TCP connection failed or closed while it was still needed.</summary>
public sealed class DataPlaneConnectionException : DataPlaneException
{
    public DataPlaneConnectionException(string message, Exception? inner = null) : base(message, inner) { }
}
