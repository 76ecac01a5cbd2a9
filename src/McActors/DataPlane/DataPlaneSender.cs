using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace McActors.DataPlane;

// One file over ~400 lines on purpose: one connection's send side is one state machine (window,
// acknowledgements, the receive loop that releases it, failure) over one set of fields.

/// <summary>
/// Primary side of one data-plane connection: an ordered stream of writes, epoch markers and
/// guest states to one secondary, with a window of unacknowledged bytes. A send completes once
/// its frame is queued for the socket (its data copied: the caller may reuse the buffer); it
/// waits first while the window is full, which is the back-pressure to the guest.
/// <para>
/// Sends must not overlap (one caller at a time, as from one actor); sequences are the caller's
/// and must follow each other without gaps from the first sequence given to
/// <see cref="ConnectAsync(string, int, DataPlaneVolume, long, long, DataPlaneOptions?, CancellationToken)"/>.
/// A failed connection is not repaired: <see cref="Completion"/> faults, pending and later sends
/// throw, and the owner connects a new sender.
/// </para>
/// <para>
/// Resync: <see cref="SendCopyAsync"/> and <see cref="SendSyncCompleteAsync"/> go to this
/// secondary only, between the sequenced frames, without a sequence of their own (the sequences
/// are shared by every secondary of the primary). They are windowed like any frame: the window
/// counts every frame of the connection (<see cref="FramesSent"/>), and each ack carries how many
/// the secondary has handled, so copy bytes are freed as they are applied.
/// </para>
/// </summary>
public sealed class DataPlaneSender : IReplicaStream
{
    private readonly SocketConnection _connection;
    private readonly DataPlaneOptions _options;
    private readonly FrameDecoder _decoder;
    private readonly object _lock = new();
    // (frame number on this connection, wire bytes) of each unacknowledged frame, oldest first.
    private readonly Queue<(long Frame, int Bytes)> _inFlight = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _ackSignal;
    private Task _ackLoop = Task.CompletedTask;
    private long _outstandingBytes;
    private long _acknowledged;
    private long _nextSequence;
    private long _framesSent;
    private long _framesAcknowledged;
    private Exception? _fault;
    private int _sending;
    private int _disposed;

    private DataPlaneSender(SocketConnection connection, DataPlaneVolume volume, long generation, long firstSequence, DataPlaneOptions options)
    {
        _connection = connection;
        _options = options;
        _decoder = new FrameDecoder(options.MaxPayloadBytes);
        Volume = volume;
        Generation = generation;
        _nextSequence = firstSequence;
        _acknowledged = firstSequence - 1;
    }

    public DataPlaneVolume Volume { get; }

    public long Generation { get; }

    /// <summary>The last sequence the secondary's handler had applied when it accepted this connection.</summary>
    public long PeerAppliedSequence { get; private set; }

    /// <summary>The sequence the next send must carry.</summary>
    public long NextSequence => Volatile.Read(ref _nextSequence);

    /// <summary>Every frame up to this sequence has been handled by the secondary (first sequence - 1 until the first ack).</summary>
    public long AcknowledgedSequence => Volatile.Read(ref _acknowledged);

    /// <summary>Stream frames (writes, markers, guest states, copies, sync-completes) sent on this connection so far.</summary>
    public long FramesSent => Volatile.Read(ref _framesSent);

    /// <summary>Of <see cref="FramesSent"/>, how many the secondary has handled (its handler returned), cumulative.</summary>
    public long AcknowledgedFrames => Volatile.Read(ref _framesAcknowledged);

    /// <summary>Wire bytes sent (or queued) and not yet acknowledged.</summary>
    public long OutstandingBytes => Volatile.Read(ref _outstandingBytes);

    /// <summary>
    /// Completes when the sender is disposed; faults (with <see cref="DataPlaneConnectionException"/>,
    /// <see cref="DataPlaneRefusedException"/> or <see cref="DataPlaneProtocolException"/>) when the
    /// connection fails, so the owning actor can restart it.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>Connects to a secondary's listener and handshakes; throws <see cref="DataPlaneRefusedException"/> if refused.</summary>
    public static async Task<DataPlaneSender> ConnectAsync(
        string host, int port, DataPlaneVolume volume, long generation, long firstSequence,
        DataPlaneOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= DataPlaneOptions.Default;
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        ArgumentOutOfRangeException.ThrowIfLessThan(firstSequence, 1);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.HandshakeTimeout);
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            socket.Dispose();
            throw new DataPlaneConnectionException($"cannot connect the data plane to {host}:{port}: {(e is SocketException ? e.Message : $"no answer within {options.HandshakeTimeout}")}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new SocketConnection(socket, options);
        var sender = new DataPlaneSender(connection, volume, generation, firstSequence, options);
        connection.Start();
        try
        {
            await sender.HandshakeAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await connection.Input.CompleteAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            if (e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
                throw new DataPlaneConnectionException($"no data-plane handshake from {host}:{port} within {options.HandshakeTimeout}", e);
            throw;
        }
        sender._ackLoop = Task.Run(sender.AckLoopAsync);
        return sender;
    }

    /// <inheritdoc cref="ConnectAsync(string, int, DataPlaneVolume, long, long, DataPlaneOptions?, CancellationToken)"/>
    public static Task<DataPlaneSender> ConnectAsync(
        IPEndPoint endPoint, DataPlaneVolume volume, long generation, long firstSequence,
        DataPlaneOptions? options = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(endPoint.Address.ToString(), endPoint.Port, volume, generation, firstSequence, options, cancellationToken);

    private async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        var mine = new HandshakeFrame(FrameCodec.ProtocolVersion, Volume.VolumeId, Generation, Volume.BlockSize, _nextSequence);
        FrameCodec.WriteHandshake(_connection.Output, mine);
        await _connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);

        var input = _connection.Input;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var examined = buffer.End;
            try
            {
                if (_decoder.TryDecode(ref buffer, out var frame))
                {
                    examined = buffer.Start; // whatever follows is for the ack loop, unread
                    if (frame.Type == FrameType.Error)
                    {
                        var error = frame.ToError();
                        throw new DataPlaneRefusedException(error.Code, error.Reason, remote: true);
                    }
                    if (frame.Type != FrameType.Handshake)
                        throw new DataPlaneProtocolException($"expected a handshake, got a {frame.Type} frame", 0);
                    var theirs = frame.AsHandshake();
                    var mismatch = Handshakes.Mismatch(mine, theirs);
                    if (mismatch is not null)
                        throw new DataPlaneRefusedException(mismatch.Value.Code, $"secondary answered with {mismatch.Value.Reason}");
                    PeerAppliedSequence = theirs.Sequence;
                    return;
                }
                if (result.IsCompleted)
                {
                    _decoder.ThrowIfTruncated(buffer);
                    throw new DataPlaneConnectionException("the secondary closed the data-plane connection during the handshake");
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, examined);
            }
        }
    }

    /// <summary>Streams one write. <paramref name="data"/> is copied before the returned task completes.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendWriteAsync(long epoch, long sequence, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        CheckPayload(data.Length);
        EnterSend(sequence);
        try
        {
            var size = FrameCodec.WriteFrameSize(data.Length);
            await ReserveAsync(size, cancellationToken).ConfigureAwait(false);
            FrameCodec.WriteWrite(_connection.Output, new WriteFrame(Generation, epoch, sequence, offset, data.Length), data.Span);
            await FlushAsync(sequence).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>Closes epoch <paramref name="epoch"/> in the stream; the secondary acknowledges it at once.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendMarkerAsync(long epoch, long sequence, long writesInEpoch, long bytesInEpoch, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        EnterSend(sequence);
        try
        {
            await ReserveAsync(FrameCodec.MarkerFrameSize, cancellationToken).ConfigureAwait(false);
            FrameCodec.WriteMarker(_connection.Output, new EpochMarkerFrame(Generation, epoch, sequence, writesInEpoch, bytesInEpoch));
            await FlushAsync(sequence).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>Streams the guest state of checkpoint <paramref name="epoch"/>; <paramref name="blob"/> is copied before the task completes.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendGuestStateAsync(long epoch, long sequence, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        CheckPayload(blob.Length);
        EnterSend(sequence);
        try
        {
            await ReserveAsync(FrameCodec.GuestStateFrameSize(blob.Length), cancellationToken).ConfigureAwait(false);
            FrameCodec.WriteGuestState(_connection.Output, new GuestStateFrame(Generation, epoch, sequence, blob.Length), blob.Span);
            await FlushAsync(sequence).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>
    /// Streams one chunk of the primary's image to this secondary only (a resync), after every frame
    /// sent so far and before the next: it takes no sequence, and <see cref="NextSequence"/> does not
    /// move. <paramref name="epoch"/> is the epoch in which the chunk was read. <paramref name="data"/>
    /// is copied before the returned task completes; the send waits for the window like any other.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendCopyAsync(long epoch, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        CheckPayload(data.Length);
        EnterSend();
        try
        {
            await ReserveAsync(FrameCodec.CopyFrameSize(data.Length), cancellationToken).ConfigureAwait(false);
            FrameCodec.WriteCopy(_connection.Output, new CopyFrame(Generation, epoch, _nextSequence - 1, offset, data.Length), data.Span);
            await FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>
    /// Tells this secondary that every differing chunk has been sent: from checkpoint
    /// <paramref name="epoch"/> on its image is the primary's. Unsequenced, like a copy; the
    /// secondary acknowledges it at once (wait with <see cref="WaitForFramesAcknowledgedAsync"/>
    /// for <see cref="FramesSent"/>).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendSyncCompleteAsync(long epoch, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        EnterSend();
        try
        {
            await ReserveAsync(FrameCodec.SyncCompleteFrameSize, cancellationToken).ConfigureAwait(false);
            FrameCodec.WriteSyncComplete(_connection.Output, new SyncCompleteFrame(Generation, epoch, _nextSequence - 1));
            await FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>Completes when the secondary has handled the first <paramref name="frames"/> frames of this connection; throws if the connection fails first.</summary>
    public async Task WaitForFramesAcknowledgedAsync(long frames, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task signal;
            lock (_lock)
            {
                if (_framesAcknowledged >= frames)
                    return;
                ThrowIfFaulted();
                signal = (_ackSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Completes when the secondary has acknowledged <paramref name="sequence"/>; throws if the connection fails first.</summary>
    public async Task WaitForAcknowledgementAsync(long sequence, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task signal;
            lock (_lock)
            {
                if (_acknowledged >= sequence)
                    return;
                ThrowIfFaulted();
                signal = (_ackSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void CheckPayload(int length)
    {
        if (length > _options.MaxPayloadBytes)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"payload exceeds the data plane's limit of {_options.MaxPayloadBytes} B");
    }

    private void EnterSend()
    {
        if (Interlocked.Exchange(ref _sending, 1) != 0)
            throw new InvalidOperationException("data-plane sends must not overlap: await each send before the next");
    }

    private void EnterSend(long sequence)
    {
        EnterSend();
        if (sequence != _nextSequence)
        {
            Volatile.Write(ref _sending, 0);
            throw new ArgumentException($"sequence {sequence} is out of order: the stream expects {_nextSequence}", nameof(sequence));
        }
    }

    // Waits until the frame fits in the window, then numbers it. A frame larger than the whole
    // window still goes once nothing else is outstanding, or it could never be sent. Nothing may
    // throw between this and the frame's write: a numbered frame never sent would never be acked.
    private async ValueTask ReserveAsync(int size, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task signal;
            lock (_lock)
            {
                ThrowIfFaulted();
                if (_outstandingBytes == 0 || _outstandingBytes + size <= _options.WindowBytes)
                {
                    _outstandingBytes += size;
                    _inFlight.Enqueue((++_framesSent, size));
                    return;
                }
                signal = (_ackSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private ValueTask FlushAsync(long sequence)
    {
        Volatile.Write(ref _nextSequence, sequence + 1);
        return FlushAsync();
    }

    private async ValueTask FlushAsync()
    {
        FlushResult result;
        try
        {
            result = await _connection.Output.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Fail(e as DataPlaneException ?? new DataPlaneConnectionException($"data-plane send failed: {e.Message}", e));
            throw Faulted();
        }
        if (result.IsCompleted)
            throw Faulted();
    }

    private void ThrowIfFaulted()
    {
        if (_fault is not null || Volatile.Read(ref _disposed) != 0)
            throw Faulted();
    }

    private Exception Faulted()
    {
        if (Volatile.Read(ref _disposed) != 0)
            return new ObjectDisposedException(nameof(DataPlaneSender));
        var fault = _fault ?? new DataPlaneConnectionException("data-plane connection closed");
        return new DataPlaneConnectionException($"data-plane connection to the secondary failed: {fault.Message}", fault);
    }

    private async Task AckLoopAsync()
    {
        var input = _connection.Input;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (_decoder.TryDecode(ref buffer, out var frame))
                        OnFrame(frame);
                    if (result.IsCompleted)
                    {
                        _decoder.ThrowIfTruncated(buffer);
                        throw new DataPlaneConnectionException("the secondary closed the data-plane connection");
                    }
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }
            }
        }
        catch (Exception e)
        {
            Fail(e is DataPlaneException ? e : new DataPlaneConnectionException($"data-plane receive failed: {e.Message}", e));
        }
    }

    private void OnFrame(in DecodedFrame frame)
    {
        switch (frame.Type)
        {
            case FrameType.Ack:
                var ack = frame.AsAck();
                if (ack.Generation != Generation)
                    throw new DataPlaneProtocolException($"ack of generation {ack.Generation} on a generation {Generation} stream", _decoder.StreamOffset - frame.WireSize);
                OnAck(ack.AppliedSequence, ack.FramesHandled, _decoder.StreamOffset - frame.WireSize);
                break;
            case FrameType.Error:
                var error = frame.ToError();
                throw new DataPlaneRefusedException(error.Code, error.Reason, remote: true);
            default:
                throw new DataPlaneProtocolException($"unexpected {frame.Type} frame from the secondary", _decoder.StreamOffset - frame.WireSize);
        }
    }

    private void OnAck(long sequence, long frames, long streamOffset)
    {
        TaskCompletionSource? signal;
        lock (_lock)
        {
            if (sequence < _acknowledged || sequence >= _nextSequence)
                throw new DataPlaneProtocolException($"ack of sequence {sequence} outside the unacknowledged range ({_acknowledged}, {_nextSequence})", streamOffset);
            if (frames < _framesAcknowledged || frames > _framesSent)
                throw new DataPlaneProtocolException($"ack of {frames} frames outside the unacknowledged range [{_framesAcknowledged}, {_framesSent}]", streamOffset);
            while (_inFlight.Count > 0 && _inFlight.Peek().Frame <= frames)
                _outstandingBytes -= _inFlight.Dequeue().Bytes;
            Volatile.Write(ref _acknowledged, sequence);
            Volatile.Write(ref _framesAcknowledged, frames);
            signal = _ackSignal;
            _ackSignal = null;
        }
        signal?.TrySetResult();
    }

    private void Fail(Exception error)
    {
        TaskCompletionSource? signal;
        lock (_lock)
        {
            if (_fault is not null)
                return;
            _fault = error;
            signal = _ackSignal;
            _ackSignal = null;
        }
        signal?.TrySetResult();
        if (Volatile.Read(ref _disposed) != 0)
            _completion.TrySetResult();
        else
            _completion.TrySetException(error);
        _connection.Abort();
    }

    /// <summary>Sends what is queued, closes the connection and completes <see cref="Completion"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            await _connection.CloseAsync(_options.CloseTimeout, inputAbandoned: false).ConfigureAwait(false);
        }
        finally
        {
            Fail(new ObjectDisposedException(nameof(DataPlaneSender)));
            await _ackLoop.ConfigureAwait(false);
            _completion.TrySetResult();
        }
    }
}

internal static class Handshakes
{
    /// <summary>The first field on which two handshakes disagree, or null if they match.</summary>
    public static (DataPlaneErrorCode Code, string Reason)? Mismatch(in HandshakeFrame expected, in HandshakeFrame actual)
    {
        if (actual.ProtocolVersion != expected.ProtocolVersion)
            return (DataPlaneErrorCode.ProtocolVersionMismatch, $"protocol version {actual.ProtocolVersion}, expected {expected.ProtocolVersion}");
        if (actual.VolumeId != expected.VolumeId)
            return (DataPlaneErrorCode.VolumeMismatch, $"volume id {actual.VolumeId}, expected {expected.VolumeId}");
        if (actual.BlockSize != expected.BlockSize)
            return (DataPlaneErrorCode.BlockSizeMismatch, $"block size {actual.BlockSize} B, expected {expected.BlockSize} B");
        if (actual.Generation != expected.Generation)
            return (DataPlaneErrorCode.GenerationMismatch, $"generation {actual.Generation}, expected {expected.Generation}");
        return null;
    }
}
