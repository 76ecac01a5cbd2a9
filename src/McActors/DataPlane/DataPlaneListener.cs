using System.Net;
using System.Net.Sockets;

namespace McActors.DataPlane;

/// <summary>
/// Secondary side: listens for a primary, checks its handshake (volume, block size, protocol
/// version, generation) and feeds the stream to one <see cref="IDataPlaneHandler"/>. One
/// primary at a time: a handshake of the current or a newer generation replaces the current
/// connection; one of an older generation than any accepted so far, or than
/// <see cref="FenceGeneration"/>, is refused (fencing).
/// </summary>
public sealed class DataPlaneListener : IAsyncDisposable
{
    private readonly DataPlaneVolume _volume;
    private readonly IDataPlaneHandler _handler;
    private readonly DataPlaneOptions _options;
    private readonly Socket _listenSocket;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _admission = new(1, 1);
    private readonly HashSet<Task> _handshakes = [];
    private Task _acceptLoop = Task.CompletedTask;
    private ReceiverSession? _current;
    private long _fence;
    private int _disposed;

    /// <summary>Binds at once (port 0 picks a free port: see <see cref="Port"/>); call <see cref="Start"/> to accept.</summary>
    public DataPlaneListener(IPEndPoint endPoint, DataPlaneVolume volume, IDataPlaneHandler handler, DataPlaneOptions? options = null)
    {
        _volume = volume;
        _handler = handler;
        _options = options ?? DataPlaneOptions.Default;
        _options.Validate();
        _listenSocket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listenSocket.Bind(endPoint);
            _listenSocket.Listen(8);
        }
        catch
        {
            _listenSocket.Dispose();
            throw;
        }
        LocalEndPoint = (IPEndPoint)_listenSocket.LocalEndPoint!;
    }

    /// <summary>Binds to <paramref name="host"/> (an address or a name, resolved now) and <paramref name="port"/> (0: any free port).</summary>
    public DataPlaneListener(string host, int port, DataPlaneVolume volume, IDataPlaneHandler handler, DataPlaneOptions? options = null)
        : this(new IPEndPoint(IPAddress.TryParse(host, out var address) ? address : Dns.GetHostAddresses(host)[0], port), volume, handler, options)
    {
    }

    public IPEndPoint LocalEndPoint { get; }

    public int Port => LocalEndPoint.Port;

    /// <summary>Handshakes below this generation are refused; only ever rises.</summary>
    public long FenceGeneration => Interlocked.Read(ref _fence);

    /// <summary>Generation of the connected primary, or null.</summary>
    public long? CurrentGeneration => Volatile.Read(ref _current)?.Generation;

    /// <summary>Starts accepting connections.</summary>
    public DataPlaneListener Start()
    {
        _acceptLoop = Task.Run(AcceptLoopAsync);
        return this;
    }

    /// <summary>
    /// Raises the fence (e.g. when the coordinator announces a new generation): from now on older
    /// primaries are refused, and a connected one below the fence is closed.
    /// </summary>
    public async Task RaiseFenceAsync(long generation)
    {
        await _admission.WaitAsync().ConfigureAwait(false);
        try
        {
            RaiseFence(generation);
            if (_current is { } current && current.Generation < generation)
            {
                await current.StopAsync(DataPlaneErrorCode.StaleGeneration, $"generation {current.Generation} is fenced off: generation {generation} has begun").ConfigureAwait(false);
                _current = null;
            }
        }
        finally
        {
            _admission.Release();
        }
    }

    private void RaiseFence(long generation)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _fence)) < generation && Interlocked.CompareExchange(ref _fence, generation, seen) != seen)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listenSocket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                    return;
                continue;
            }
            // Each handshake on its own task: a silent client must not hold up the next one.
            var handshake = AdmitAsync(socket);
            lock (_handshakes)
                _handshakes.Add(handshake);
            _ = handshake.ContinueWith(t => { lock (_handshakes) _handshakes.Remove(t); }, TaskScheduler.Default);
        }
    }

    private async Task AdmitAsync(Socket socket)
    {
        var connection = new SocketConnection(socket, _options);
        connection.Start();
        var decoder = new FrameDecoder(_options.MaxPayloadBytes);
        HandshakeFrame hello;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(_options.HandshakeTimeout);
            hello = await ReadHandshakeAsync(connection, decoder, timeout.Token).ConfigureAwait(false);
        }
        catch (DataPlaneRefusedException e)
        {
            await RefuseAsync(connection, 0, e.Code, e.Reason).ConfigureAwait(false);
            return;
        }
        catch (DataPlaneProtocolException e)
        {
            await RefuseAsync(connection, 0, DataPlaneErrorCode.ProtocolViolation, e.Message).ConfigureAwait(false);
            return;
        }
        catch (Exception)
        {
            // Timeout, shutdown or a peer that went away: nothing to tell it.
            await connection.Input.CompleteAsync().ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        try
        {
            await _admission.WaitAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await RefuseAsync(connection, hello.Generation, DataPlaneErrorCode.ShuttingDown, "the secondary is shutting down").ConfigureAwait(false);
            return;
        }
        try
        {
            var current = _current;
            var floor = Math.Max(FenceGeneration, current?.Generation ?? 0);
            if (hello.Generation < floor)
            {
                await RefuseAsync(connection, hello.Generation, DataPlaneErrorCode.StaleGeneration,
                    $"generation {hello.Generation} is stale: this secondary follows generation {floor}").ConfigureAwait(false);
                return;
            }
            if (current is not null)
            {
                // The old stream's handler calls end before the new one's begin.
                await current.StopAsync(DataPlaneErrorCode.Replaced, $"replaced by a primary of generation {hello.Generation}").ConfigureAwait(false);
                _current = null;
            }
            RaiseFence(hello.Generation);

            long applied;
            try
            {
                applied = await _handler.OnConnectedAsync(hello, _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await RefuseAsync(connection, hello.Generation, DataPlaneErrorCode.HandlerFailed, $"secondary refused the stream: {e.Message}").ConfigureAwait(false);
                return;
            }
            var reply = new HandshakeFrame(FrameCodec.ProtocolVersion, _volume.VolumeId, hello.Generation, _volume.BlockSize, applied);
            FrameCodec.WriteHandshake(connection.Output, reply);
            await connection.Output.FlushAsync().ConfigureAwait(false);
            var session = new ReceiverSession(connection, decoder, hello, _handler, _options, this);
            _current = session;
            session.Start(_stopping.Token);
        }
        finally
        {
            _admission.Release();
        }
    }

    private async Task<HandshakeFrame> ReadHandshakeAsync(SocketConnection connection, FrameDecoder decoder, CancellationToken cancellationToken)
    {
        var input = connection.Input;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            // Only the handshake is consumed, and only it examined: frames right behind it stay
            // for the session, whose first read must return them without waiting for more bytes.
            var consumed = buffer.Start;
            var examined = buffer.End;
            try
            {
                if (decoder.TryDecode(ref buffer, out var frame))
                {
                    consumed = examined = buffer.Start;
                    if (frame.Type != FrameType.Handshake)
                        throw new DataPlaneProtocolException($"expected a handshake, got a {frame.Type} frame", 0);
                    var hello = frame.AsHandshake();
                    var expected = new HandshakeFrame(FrameCodec.ProtocolVersion, _volume.VolumeId, hello.Generation, _volume.BlockSize, hello.Sequence);
                    if (Handshakes.Mismatch(expected, hello) is { } mismatch)
                        throw new DataPlaneRefusedException(mismatch.Code, $"primary offered {mismatch.Reason}");
                    if (hello.Sequence < 1)
                        throw new DataPlaneProtocolException($"first sequence {hello.Sequence} must be at least 1", 0);
                    return hello;
                }
                if (result.IsCompleted)
                {
                    decoder.ThrowIfTruncated(buffer);
                    throw new DataPlaneConnectionException("the primary closed the connection before its handshake");
                }
            }
            finally
            {
                input.AdvanceTo(consumed, examined);
            }
        }
    }

    private async Task RefuseAsync(SocketConnection connection, long generation, DataPlaneErrorCode code, string reason)
    {
        try
        {
            FrameCodec.WriteError(connection.Output, new ErrorFrame(generation, code, reason));
            using var patience = new CancellationTokenSource(_options.CloseTimeout);
            await connection.Output.FlushAsync(patience.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DataPlaneException or InvalidOperationException or OperationCanceledException)
        {
            // The peer is gone or stuck; closing resets it.
        }
        await connection.CloseAsync(_options.CloseTimeout, inputAbandoned: true).ConfigureAwait(false);
    }

    internal void OnSessionEnded(ReceiverSession session, Exception? error)
    {
        Interlocked.CompareExchange(ref _current, null, session);
        try
        {
            _handler.OnDisconnected(session.Generation, error);
        }
        catch (Exception)
        {
            // A handler's notification must not take the listener down.
        }
    }

    /// <summary>Stops accepting, closes the current connection (telling the primary why) and waits for it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopping.Cancel();
        _listenSocket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        Task[] pending;
        lock (_handshakes)
            pending = [.. _handshakes];
        await Task.WhenAll(pending).ConfigureAwait(false);
        await _admission.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_current is { } current)
                await current.StopAsync(DataPlaneErrorCode.ShuttingDown, "the secondary is shutting down").ConfigureAwait(false);
            _current = null;
        }
        finally
        {
            _admission.Release();
        }
        _stopping.Dispose();
    }
}
