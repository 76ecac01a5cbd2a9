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

    /// <summary>
    /// A chunk of the primary's image, sent to this replica only while it resyncs. Handled in
    /// stream order: after the frame of sequence <see cref="CopyFrame.AfterSequence"/> and before the
    /// next, so a copy read before a later write is applied before it. <paramref name="data"/> has
    /// the same lifetime as a write's. The default refuses: a handler that never resyncs needs none.
    /// </summary>
    ValueTask OnCopyAsync(CopyFrame copy, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not handle resync copy frames (copy at offset {copy.Offset}, epoch {copy.Epoch}); implement IDataPlaneHandler.OnCopyAsync");

    /// <summary>
    /// The primary has sent every chunk that differed: from checkpoint <see cref="SyncCompleteFrame.Epoch"/>
    /// on this replica's image is the primary's (the store's MarkSynced). Acknowledged as soon as
    /// this returns. The default refuses, as for <see cref="OnCopyAsync"/>.
    /// </summary>
    ValueTask OnSyncCompleteAsync(SyncCompleteFrame syncComplete, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} does not handle resync (sync complete at epoch {syncComplete.Epoch}); implement IDataPlaneHandler.OnSyncCompleteAsync");

    /// <summary>The connection of <paramref name="generation"/> ended; <paramref name="error"/> is null for a clean close by the primary.</summary>
    void OnDisconnected(long generation, Exception? error)
    {
    }
}
