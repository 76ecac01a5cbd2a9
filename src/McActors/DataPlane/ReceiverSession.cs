using System.Buffers;

namespace McActors.DataPlane;

/// <summary>
/// One accepted primary's stream on the secondary: decodes frames in order, checks generation
/// and sequence, hands each to the handler and acknowledges cumulatively after the handler
/// returns: after every marker and sync-complete, after <see cref="DataPlaneOptions.AckIntervalBytes"/>
/// bytes, and at the end of each read from the socket (so an idle stream is always fully acknowledged).
/// An ack carries the last sequence handled and the count of stream frames handled on this
/// connection (copies have no sequence; the count is what frees the primary's window for them).
/// </summary>
internal sealed class ReceiverSession
{
    private readonly SocketConnection _connection;
    private readonly FrameDecoder _decoder;
    private readonly IDataPlaneHandler _handler;
    private readonly DataPlaneOptions _options;
    private readonly DataPlaneListener _owner;
    private CancellationTokenSource? _cancel;
    private Task _loop = Task.CompletedTask;
    private (DataPlaneErrorCode Code, string Reason)? _stopReason;
    // Pooled copy target for frames that straddle two receive-buffer segments.
    private byte[]? _straddleBuffer;
    private long _handled;
    // Stream frames (every type but handshake, ack and error) handled on this connection, and the
    // count last acknowledged.
    private long _framesHandled;
    private long _framesAcknowledged;

    public ReceiverSession(SocketConnection connection, FrameDecoder decoder, HandshakeFrame hello, IDataPlaneHandler handler, DataPlaneOptions options, DataPlaneListener owner)
    {
        _connection = connection;
        _decoder = decoder;
        _handler = handler;
        _options = options;
        _owner = owner;
        Generation = hello.Generation;
        FirstSequence = hello.Sequence;
        _handled = hello.Sequence - 1;
    }

    public long Generation { get; }

    public long FirstSequence { get; }

    public void Start(CancellationToken listenerStopping)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(listenerStopping);
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Ends the session: the handler's current call is cancelled, the primary is told why.</summary>
    public async Task StopAsync(DataPlaneErrorCode code, string reason)
    {
        _stopReason ??= (code, reason);
        try
        {
            _cancel?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The session already ended on its own.
        }
        await _loop.ConfigureAwait(false);
    }

    private async Task RunAsync()
    {
        var token = _cancel!.Token;
        Exception? error = null;
        (DataPlaneErrorCode Code, string Reason)? refusal = null;
        try
        {
            await ReceiveAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            refusal = _stopReason ?? (DataPlaneErrorCode.ShuttingDown, "the secondary is shutting down");
            error = new DataPlaneRefusedException(refusal.Value.Code, refusal.Value.Reason);
        }
        catch (DataPlaneProtocolException e)
        {
            refusal = (DataPlaneErrorCode.ProtocolViolation, e.Message);
            error = e;
        }
        catch (DataPlaneRefusedException e)
        {
            refusal = e.Remote ? null : (e.Code, e.Reason);
            error = e;
        }
        catch (DataPlaneConnectionException e)
        {
            error = e;
        }
        catch (Exception e)
        {
            refusal = (DataPlaneErrorCode.HandlerFailed, $"the secondary failed to apply the stream: {e.GetType().Name}: {e.Message}");
            error = e;
        }

        if (refusal is { } r)
        {
            try
            {
                // What was handled before the failure is applied: say so, so the primary's view is exact.
                if (_framesHandled > _framesAcknowledged)
                    FrameCodec.WriteAck(_connection.Output, new AckFrame(Generation, _handled, _framesHandled));
                FrameCodec.WriteError(_connection.Output, new ErrorFrame(Generation, r.Code, r.Reason));
                // Bounded: a primary that reads nothing must not keep this session (and the listener) waiting.
                using var patience = new CancellationTokenSource(_options.CloseTimeout);
                await _connection.Output.FlushAsync(patience.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is DataPlaneException or InvalidOperationException or OperationCanceledException)
            {
                // The primary is gone or stuck; closing resets it.
            }
        }
        await _connection.CloseAsync(_options.CloseTimeout, inputAbandoned: true).ConfigureAwait(false);
        if (_straddleBuffer is not null)
            ArrayPool<byte>.Shared.Return(_straddleBuffer);
        _straddleBuffer = null;
        _cancel.Dispose();
        _owner.OnSessionEnded(this, error);
    }

    private async Task ReceiveAsync(CancellationToken token)
    {
        var input = _connection.Input;
        var expected = FirstSequence;
        long unacknowledgedBytes = 0;
        while (true)
        {
            var result = await input.ReadAsync(token).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                while (_decoder.TryDecode(ref buffer, out var frame))
                {
                    var offset = _decoder.StreamOffset - frame.WireSize;
                    var sequenced = frame.Type is FrameType.Write or FrameType.EpochMarker or FrameType.GuestState;
                    if (sequenced || frame.Type is FrameType.Copy or FrameType.SyncComplete)
                    {
                        if (frame.Generation != Generation)
                            throw new DataPlaneRefusedException(
                                frame.Generation < Generation ? DataPlaneErrorCode.StaleGeneration : DataPlaneErrorCode.GenerationMismatch,
                                $"{frame.Type} frame of generation {frame.Generation} on the generation {Generation} stream (stream offset {offset})");
                        if (_owner.FenceGeneration > Generation)
                            throw new DataPlaneRefusedException(DataPlaneErrorCode.StaleGeneration,
                                $"generation {Generation} is fenced off by generation {_owner.FenceGeneration}");
                        if (sequenced && frame.Sequence != expected)
                            throw new DataPlaneRefusedException(DataPlaneErrorCode.SequenceGap,
                                $"{frame.Type} frame has sequence {frame.Sequence}, expected {expected} (stream offset {offset})");
                        // Unsequenced frames name the sequence they follow: a check that they are where the primary put them.
                        if (!sequenced && frame.Sequence != expected - 1)
                            throw new DataPlaneRefusedException(DataPlaneErrorCode.SequenceGap,
                                $"{frame.Type} frame follows sequence {frame.Sequence}, but the stream is at {expected - 1} (stream offset {offset})");
                    }
                    switch (frame.Type)
                    {
                        case FrameType.Write:
                            await _handler.OnWriteAsync(frame.AsWrite(), Contiguous(frame.Payload), token).ConfigureAwait(false);
                            break;
                        case FrameType.GuestState:
                            await _handler.OnGuestStateAsync(frame.AsGuestState(), Contiguous(frame.Payload), token).ConfigureAwait(false);
                            break;
                        case FrameType.EpochMarker:
                            await _handler.OnMarkerAsync(frame.AsMarker(), token).ConfigureAwait(false);
                            break;
                        case FrameType.Copy:
                            await _handler.OnCopyAsync(frame.AsCopy(), Contiguous(frame.Payload), token).ConfigureAwait(false);
                            break;
                        case FrameType.SyncComplete:
                            await _handler.OnSyncCompleteAsync(frame.AsSyncComplete(), token).ConfigureAwait(false);
                            break;
                        case FrameType.Error:
                            var peerError = frame.ToError();
                            throw new DataPlaneRefusedException(peerError.Code, peerError.Reason, remote: true);
                        default:
                            throw new DataPlaneProtocolException($"unexpected {frame.Type} frame from the primary", offset);
                    }
                    if (sequenced)
                        _handled = expected++;
                    _framesHandled++;
                    unacknowledgedBytes += frame.WireSize;
                    if (frame.Type is FrameType.EpochMarker or FrameType.SyncComplete || unacknowledgedBytes >= _options.AckIntervalBytes)
                    {
                        await AcknowledgeAsync(token).ConfigureAwait(false);
                        unacknowledgedBytes = 0;
                    }
                }
                if (result.IsCompleted)
                {
                    _decoder.ThrowIfTruncated(buffer);
                    if (unacknowledgedBytes > 0)
                        await AcknowledgeAsync(token).ConfigureAwait(false);
                    return; // the primary closed cleanly
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }
            if (unacknowledgedBytes > 0)
            {
                await AcknowledgeAsync(token).ConfigureAwait(false);
                unacknowledgedBytes = 0;
            }
        }
    }

    private ReadOnlyMemory<byte> Contiguous(in ReadOnlySequence<byte> payload)
    {
        if (payload.IsSingleSegment)
            return payload.First;
        var length = (int)payload.Length;
        if (_straddleBuffer is null || _straddleBuffer.Length < length)
        {
            if (_straddleBuffer is not null)
                ArrayPool<byte>.Shared.Return(_straddleBuffer);
            _straddleBuffer = ArrayPool<byte>.Shared.Rent(length);
        }
        payload.CopyTo(_straddleBuffer);
        return _straddleBuffer.AsMemory(0, length);
    }

    private async ValueTask AcknowledgeAsync(CancellationToken token)
    {
        _framesAcknowledged = _framesHandled;
        FrameCodec.WriteAck(_connection.Output, new AckFrame(Generation, _handled, _framesHandled));
        var flush = await _connection.Output.FlushAsync(token).ConfigureAwait(false);
        if (flush.IsCompleted)
            throw new DataPlaneConnectionException("the primary's side of the data-plane connection closed");
    }
}
