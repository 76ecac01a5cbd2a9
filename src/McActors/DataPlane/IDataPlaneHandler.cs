namespace McActors.DataPlane;

/// <summary>
/// What a secondary does with the stream. Calls come one at a time, in sequence order, never
/// concurrently (also across a replaced connection: the old one's calls have returned before
/// the new one's first call). A frame is acknowledged to the primary only after its call
/// returns; an exception closes the connection with a <see cref="DataPlaneErrorCode.HandlerFailed"/> error.
/// The cancellation token fires when the connection is replaced or the listener stops.
/// </summary>
public interface IDataPlaneHandler
{
    /// <summary>
    /// A primary of <paramref name="primary"/>.Generation connected, and will send from
    /// <paramref name="primary"/>.Sequence on. Returns the last sequence this replica has applied,
    /// told back to the primary; throwing refuses the connection.
    /// </summary>
    ValueTask<long> OnConnectedAsync(HandshakeFrame primary, CancellationToken cancellationToken) =>
        ValueTask.FromResult(primary.Sequence - 1);

    /// <summary>
    /// One write. <paramref name="data"/> points into the receive buffer (or a pooled copy when
    /// the frame straddled two buffer segments): valid only until the returned task completes.
    /// Copy it to keep it.
    /// </summary>
    ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>The end of an epoch's writes. Acknowledged as soon as this returns.</summary>
    ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken);

    /// <summary>The guest state of a checkpoint; <paramref name="blob"/> has the same lifetime as a write's data.</summary>
    ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken);

    /// <summary>The connection of <paramref name="generation"/> ended; <paramref name="error"/> is null for a clean close by the primary.</summary>
    void OnDisconnected(long generation, Exception? error)
    {
    }
}
