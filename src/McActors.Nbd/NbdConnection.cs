using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd;

/// <summary>The peer broke the protocol in a way that leaves no reply possible: the connection closes.</summary>
internal sealed class NbdProtocolViolation(string message) : Exception(message);

/// <summary>
/// One client connection: the fixed newstyle handshake (<see cref="NbdHandshake"/>), then
/// transmission with pipelined requests answered in any order (simple replies). Nothing the peer
/// sends is trusted: every magic, length, flag and range is checked (<see cref="NbdRequest.Check"/>)
/// before anything is allocated or forwarded to the export.
/// </summary>
internal sealed class NbdConnection
{
    // A READ reply up to this size is copied into the pipe with its header (one send); a longer one
    // goes straight from its buffer to the socket after the header.
    private const int CopyReplyLimit = 64 * 1024;
    // How long a closing connection waits to hand its last replies to the peer.
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(1);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly NbdOptions _options;
    private readonly INbdExportSource _source;
    private readonly Action<string> _log;
    private readonly RequestBudget _budget;
    private readonly CancellationTokenSource _closing = new();
    // Requests read and not yet answered; whoever claims one (its reply, or the shutdown) answers it once.
    private readonly ConcurrentDictionary<long, InFlightRequest> _inFlight = new();
    private long _requestId;
    private readonly CancellationTokenSource _closed = new(); // the connection is torn down: no more replies

    public NbdConnection(Socket socket, INbdExportSource source, NbdOptions options, Action<string> log)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        _writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(leaveOpen: true));
        _source = source;
        _options = options;
        _log = log;
        _budget = new RequestBudget(options.MaxRequestsInFlight, options.MaxBytesInFlight);
        Peer = socket.RemoteEndPoint?.ToString() ?? "?";
    }

    public string Peer { get; }

    /// <summary>
    /// Closes the connection (server stopping): it reads no more requests, answers those in flight with
    /// NBD_ESHUTDOWN, and closes; <see cref="RunAsync"/> then ends.
    /// </summary>
    public void Abort()
    {
        try
        {
            _closing.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async Task RunAsync(CancellationToken serverStopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(serverStopping, _closing.Token);
        try
        {
            INbdExport? export;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(linked.Token))
            {
                handshake.CancelAfter(_options.HandshakeTimeout);
                try
                {
                    export = await new NbdHandshake(_reader, _writer, _source, _options, _log, Peer).NegotiateAsync(handshake.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!linked.IsCancellationRequested)
                {
                    _log($"nbd {Peer}: no handshake within {_options.HandshakeTimeout.TotalSeconds:0.#} s; closed");
                    return;
                }
            }
            if (export is null)
                return;
            using var session = CancellationTokenSource.CreateLinkedTokenSource(linked.Token, export.Closed);
            await TransmitAsync(export, session.Token).ConfigureAwait(false);
        }
        catch (NbdProtocolViolation e)
        {
            _log($"nbd {Peer}: {e.Message}; closed");
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException
                                      or InvalidOperationException)
        {
            // The peer vanished, the export went away, or the server stops: nothing to answer.
        }
        finally
        {
            _closing.Cancel();
            _closed.Cancel();
            await _reader.CompleteAsync().ConfigureAwait(false);
            try
            {
                await _writeLock.WaitAsync(CloseGrace).ConfigureAwait(false);
                // Completing flushes what is left for the peer; one that reads nothing gets no longer
                // than the grace to take it, then the socket closes under the write.
                var completing = _writer.CompleteAsync().AsTask();
                _ = completing.ContinueWith(t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted);
                await Task.WhenAny(completing, Task.Delay(CloseGrace)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
            {
            }
            _stream.Dispose();
        }
    }

    // ---- transmission ---------------------------------------------------------------------------

    private async Task TransmitAsync(INbdExport export, CancellationToken cancel)
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAtLeastAsync(RequestHeaderSize, cancel).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (buffer.Length < RequestHeaderSize)
                {
                    if (buffer.Length == 0)
                        return; // closed between requests, without NBD_CMD_DISC: the same as one
                    throw new NbdProtocolViolation($"connection closed inside a request header ({buffer.Length} of {RequestHeaderSize} B)");
                }
                var request = NbdRequest.Parse(buffer.Slice(0, RequestHeaderSize));
                _reader.AdvanceTo(buffer.GetPosition(RequestHeaderSize));
                if (request.Magic != RequestMagic)
                    throw new NbdProtocolViolation($"bad request magic 0x{request.Magic:x8}");
                if (request.Type == CmdDisc)
                    return; // in-flight requests are still answered (below), then the connection closes

                var error = request.Check(export.SizeBytes, _options);
                if (error != 0)
                {
                    if (request.Type == CmdWrite)
                        await _reader.SkipAsync(request.Length, cancel).ConfigureAwait(false); // the payload follows regardless
                    await ReplyAsync(request.Handle, error, null, cancel).ConfigureAwait(false);
                    continue;
                }
                var bytes = request.Type is CmdRead or CmdWrite ? request.Length : 0L;
                try
                {
                    await _budget.AcquireAsync(bytes, cancel).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Read but not admitted when the connection began to close: it is in flight for the peer.
                    _inFlight[Interlocked.Increment(ref _requestId)] = new InFlightRequest(request.Handle, bytes: null);
                    throw;
                }
                byte[]? payload = null;
                if (request.Type == CmdWrite)
                {
                    try
                    {
                        payload = GC.AllocateUninitializedArray<byte>((int)request.Length);
                        await _reader.ReadPayloadAsync(payload, cancel).ConfigureAwait(false);
                    }
                    catch
                    {
                        _budget.Release(bytes);
                        throw;
                    }
                }
                var id = Interlocked.Increment(ref _requestId);
                var inFlight = new InFlightRequest(request.Handle, bytes);
                _inFlight[id] = inFlight;
                _ = ServeAsync(export, request, payload, id, inFlight);
            }
        }
        finally
        {
            // Requests already read are answered before the connection closes (DISC, or the peer's
            // half-close). When the export goes away or the server stops, those still in flight are
            // answered NBD_ESHUTDOWN instead (the export may yet do them; their replies are dropped).
            try
            {
                await _budget.DrainedAsync(cancel).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            using var grace = new CancellationTokenSource(CloseGrace);
            try
            {
                foreach (var (id, inFlight) in _inFlight.OrderBy(r => r.Key))
                {
                    if (!inFlight.Claim())
                        continue; // its reply is being written
                    _inFlight.TryRemove(id, out _);
                    try
                    {
                        await ReplyAsync(inFlight.Handle, EShutdown, null, grace.Token).ConfigureAwait(false);
                    }
                    finally
                    {
                        if (inFlight.Bytes is { } bytes)
                            _budget.Release(bytes);
                    }
                }
                await _budget.DrainedAsync(grace.Token).ConfigureAwait(false); // replies claimed before the shutdown
                await _writeLock.WaitAsync(grace.Token).ConfigureAwait(false);
                try
                {
                    await _writer.FlushAsync(grace.Token).ConfigureAwait(false);
                }
                finally
                {
                    _writeLock.Release();
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }
    }

    private async Task ServeAsync(INbdExport export, NbdRequest request, byte[]? payload, long id, InFlightRequest inFlight)
    {
        uint error = 0;
        byte[]? data = null;
        try
        {
            var fua = (request.Flags & CmdFlagFua) != 0;
            var offset = (long)request.Offset;
            switch (request.Type)
            {
                case CmdRead:
                    data = request.Length == 0 ? [] : await export.ReadAsync(offset, (int)request.Length).ConfigureAwait(false);
                    if (data.Length != request.Length)
                        throw new NbdErrorException(EIo, $"the export returned {data.Length} B for a read of {request.Length} B");
                    break;
                case CmdWrite:
                    if (payload!.Length > 0)
                        await export.WriteAsync(offset, payload, fua).ConfigureAwait(false);
                    else if (fua)
                        await export.FlushAsync().ConfigureAwait(false); // nothing to write, but the same promise
                    break;
                case CmdFlush:
                    await export.FlushAsync().ConfigureAwait(false);
                    break;
                case CmdTrim:
                    await export.TrimAsync(offset, request.Length, fua).ConfigureAwait(false);
                    break;
                case CmdWriteZeroes:
                    await export.WriteZeroesAsync(offset, request.Length, fua).ConfigureAwait(false);
                    break;
            }
        }
        catch (NbdErrorException e)
        {
            error = e.Error;
            _log($"nbd {Peer}: request {request.Type} at {request.Offset} (+{request.Length}) failed: {e.Message}");
        }
        catch (OperationCanceledException)
        {
            error = EShutdown;
        }
        catch (Exception e)
        {
            error = EIo;
            _log($"nbd {Peer}: request {request.Type} at {request.Offset} (+{request.Length}) failed: {e}");
        }
        if (!inFlight.Claim())
            return; // the connection closed first and answered it NBD_ESHUTDOWN
        _inFlight.TryRemove(id, out _);
        try
        {
            // Not the session's token: a connection that stops reading still answers what it read.
            await ReplyAsync(request.Handle, error, error == 0 ? data : null, _closed.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            _closing.Cancel(); // cannot answer: the peer is gone or the connection is closing
        }
        finally
        {
            _budget.Release(inFlight.Bytes!.Value);
        }
    }

    private async Task ReplyAsync(ulong handle, uint error, byte[]? data, CancellationToken cancel)
    {
        await _writeLock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            WriteReplyHeader(_writer, error, handle);
            if (data is { Length: > 0 and <= CopyReplyLimit })
                _writer.Write(data);
            var flushed = await _writer.FlushAsync(cancel).ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled)
                throw new IOException("the connection is closed");
            if (data is { Length: > CopyReplyLimit })
                await _stream.WriteAsync(data, cancel).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static void WriteReplyHeader(PipeWriter writer, uint error, ulong handle)
    {
        var span = writer.GetSpan(SimpleReplyHeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(span, SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], error);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], handle);
        writer.Advance(SimpleReplyHeaderSize);
    }
}
