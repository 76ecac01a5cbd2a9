using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd;

/// <summary>The peer broke the protocol in a way that leaves no reply possible: the connection closes.</summary>
internal sealed class NbdProtocolViolation(string message) : Exception(message);

/// <summary>
/// One client connection: the fixed newstyle handshake, then transmission with pipelined requests
/// answered in any order (simple replies). Nothing the peer sends is trusted: every magic, length,
/// flag and range is checked before anything is allocated or forwarded to the export.
/// </summary>
internal sealed class NbdConnection
{
    // A READ reply up to this size is copied into the pipe with its header (one send); a longer one
    // goes straight from its buffer to the socket after the header.
    private const int CopyReplyLimit = 64 * 1024;
    // How long a closing connection waits to hand its last replies to the peer.
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(1);
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

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
                    export = await HandshakeAsync(handshake.Token).ConfigureAwait(false);
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

    // ---- handshake ------------------------------------------------------------------------------

    private async Task<INbdExport?> HandshakeAsync(CancellationToken cancel)
    {
        var hello = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(hello, InitMagic);
        BinaryPrimitives.WriteUInt64BigEndian(hello.AsSpan(8), OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(16), FlagFixedNewstyle | FlagNoZeroes);
        await SendAsync(hello, cancel).ConfigureAwait(false);

        var clientFlags = BinaryPrimitives.ReadUInt32BigEndian(await ReadExactAsync(4, cancel).ConfigureAwait(false));
        if ((clientFlags & ~(ClientFlagFixedNewstyle | ClientFlagNoZeroes)) != 0)
            throw new NbdProtocolViolation($"unknown client flags 0x{clientFlags:x8}");
        var noZeroes = (clientFlags & ClientFlagNoZeroes) != 0;

        while (true)
        {
            var header = await ReadExactAsync(16, cancel).ConfigureAwait(false);
            var magic = BinaryPrimitives.ReadUInt64BigEndian(header);
            if (magic != OptionMagic)
                throw new NbdProtocolViolation($"bad option magic 0x{magic:x16}");
            var option = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            if (length > _options.MaxOptionBytes)
            {
                if (option == OptExportName)
                    throw new NbdProtocolViolation($"export name of {length} B"); // no error reply exists for it
                await SkipAsync(length, cancel).ConfigureAwait(false);
                await ReplyOptionAsync(option, RepErrTooBig, $"option data of {length} B exceeds {_options.MaxOptionBytes} B", cancel).ConfigureAwait(false);
                continue;
            }
            var data = await ReadExactAsync((int)length, cancel).ConfigureAwait(false);
            switch (option)
            {
                case OptExportName:
                {
                    var name = DecodeName(data) ?? throw new NbdProtocolViolation("export name is not UTF-8");
                    var export = _source.Find(name, out _, out var why);
                    if (export is null)
                    {
                        // NBD_OPT_EXPORT_NAME has no error reply: the spec says close.
                        _log($"nbd {Peer}: export '{name}' refused: {why}");
                        return null;
                    }
                    var reply = new byte[noZeroes ? 10 : 134];
                    BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)export.SizeBytes);
                    BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), TransmissionFlags(export));
                    await SendAsync(reply, cancel).ConfigureAwait(false);
                    return export;
                }
                case OptAbort:
                    await ReplyOptionAsync(option, RepAck, [], cancel).ConfigureAwait(false);
                    return null;
                case OptList:
                    await ListAsync(data, cancel).ConfigureAwait(false);
                    break;
                case OptInfo:
                case OptGo:
                {
                    var export = await InfoAsync(option, data, cancel).ConfigureAwait(false);
                    if (export is not null && option == OptGo)
                        return export;
                    break;
                }
                default:
                    await ReplyOptionAsync(option, RepErrUnsup, $"option {option} is not supported by this server", cancel).ConfigureAwait(false);
                    break;
            }
        }
    }

    private async Task ListAsync(byte[] data, CancellationToken cancel)
    {
        if (data.Length != 0)
        {
            await ReplyOptionAsync(OptList, RepErrInvalid, "NBD_OPT_LIST carries no data", cancel).ConfigureAwait(false);
            return;
        }
        if (_source.Find("", out _, out var why) is null)
        {
            await ReplyOptionAsync(OptList, RepErrPolicy, why, cancel).ConfigureAwait(false);
            return;
        }
        foreach (var name in _source.Names)
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            var entry = new byte[4 + bytes.Length];
            BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)bytes.Length);
            bytes.CopyTo(entry, 4);
            await ReplyOptionAsync(OptList, RepServer, entry, cancel).ConfigureAwait(false);
        }
        await ReplyOptionAsync(OptList, RepAck, [], cancel).ConfigureAwait(false);
    }

    /// <summary>NBD_OPT_INFO / NBD_OPT_GO: the export's size, flags and block sizes, then ACK; null if refused.</summary>
    private async Task<INbdExport?> InfoAsync(uint option, byte[] data, CancellationToken cancel)
    {
        var nameLength = data.Length >= 4 ? BinaryPrimitives.ReadUInt32BigEndian(data) : uint.MaxValue;
        if (data.Length < 6 || nameLength > data.Length - 6)
        {
            await ReplyOptionAsync(option, RepErrInvalid, "malformed request: name length exceeds the option data", cancel).ConfigureAwait(false);
            return null;
        }
        var requests = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength));
        var name = DecodeName(data.AsSpan(4, (int)nameLength).ToArray());
        if (name is null || 4 + nameLength + 2 + 2L * requests != data.Length)
        {
            await ReplyOptionAsync(option, RepErrInvalid, name is null ? "export name is not UTF-8" : "malformed request: information request count does not match the option length", cancel)
                .ConfigureAwait(false);
            return null;
        }
        var wantsName = false;
        for (var i = 0; i < requests; i++)
            wantsName |= BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength + 2 + 2 * i)) == InfoName;
        var export = _source.Find(name, out var refusal, out var why);
        if (export is null)
        {
            await ReplyOptionAsync(option, refusal, why, cancel).ConfigureAwait(false);
            return null;
        }
        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.SizeBytes);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), TransmissionFlags(export));
        await ReplyOptionAsync(option, RepInfo, info, cancel).ConfigureAwait(false);
        if (wantsName)
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            var named = new byte[2 + bytes.Length];
            BinaryPrimitives.WriteUInt16BigEndian(named, InfoName);
            bytes.CopyTo(named, 2);
            await ReplyOptionAsync(option, RepInfo, named, cancel).ConfigureAwait(false);
        }
        // Sent whether asked or not (the spec allows it): a client that did not ask still gets a clean EINVAL for unaligned requests.
        var sizes = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(sizes, InfoBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(2), (uint)_options.MinBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(6), (uint)_options.PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(10), (uint)_options.MaxPayloadBytes);
        await ReplyOptionAsync(option, RepInfo, sizes, cancel).ConfigureAwait(false);
        await ReplyOptionAsync(option, RepAck, [], cancel).ConfigureAwait(false);
        return export;
    }

    private static ushort TransmissionFlags(INbdExport export) =>
        (ushort)(TransHasFlags | TransSendFlush | TransSendFua | TransSendTrim | TransSendWriteZeroes
                 | (export.FlushCoversAllConnections ? TransCanMultiConn : 0));

    private static string? DecodeName(byte[] bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private Task ReplyOptionAsync(uint option, uint type, string message, CancellationToken cancel) =>
        ReplyOptionAsync(option, type, Encoding.UTF8.GetBytes(message), cancel);

    private async Task ReplyOptionAsync(uint option, uint type, byte[] data, CancellationToken cancel)
    {
        var reply = new byte[20 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(reply, OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(16), (uint)data.Length);
        data.CopyTo(reply, 20);
        await SendAsync(reply, cancel).ConfigureAwait(false);
    }

    private async ValueTask SendAsync(byte[] bytes, CancellationToken cancel)
    {
        await _writer.WriteAsync(bytes, cancel).ConfigureAwait(false);
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

                var error = Check(request, export.SizeBytes);
                if (error != 0)
                {
                    if (request.Type == CmdWrite)
                        await SkipAsync(request.Length, cancel).ConfigureAwait(false); // the payload follows regardless
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
                        await ReadPayloadAsync(payload, cancel).ConfigureAwait(false);
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

    /// <summary>The NBD error for a request that must not reach the export, or 0 if it may.</summary>
    private uint Check(in NbdRequest r, long size)
    {
        var (allowedFlags, beyondEnd) = r.Type switch
        {
            CmdRead => (0, EInval),
            CmdWrite => (CmdFlagFua, ENoSpc),
            CmdFlush => (0, 0u),
            CmdTrim => (CmdFlagFua, EInval),
            CmdWriteZeroes => (CmdFlagFua | CmdFlagNoHole, ENoSpc),
            _ => (-1, EInval),
        };
        if (allowedFlags < 0 || (r.Flags & ~allowedFlags) != 0)
            return EInval; // unknown command, or a flag not negotiated for it
        if (r.Type == CmdFlush)
            return 0;
        if (r.Type is CmdRead or CmdWrite && r.Length > _options.MaxPayloadBytes)
            return EInval;
        if (r.Offset > (ulong)size || r.Length > (ulong)size - r.Offset)
            return beyondEnd;
        var mask = (ulong)_options.MinBlockSize - 1;
        if ((r.Offset & mask) != 0 || (r.Length & mask) != 0)
            return EInval;
        return 0;
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

    // ---- reading --------------------------------------------------------------------------------

    private async ValueTask<byte[]> ReadExactAsync(int count, CancellationToken cancel)
    {
        var bytes = new byte[count];
        await ReadPayloadAsync(bytes, cancel).ConfigureAwait(false);
        return bytes;
    }

    /// <summary>Fills <paramref name="into"/> from the stream, copying as bytes arrive (never buffering a whole payload twice).</summary>
    private async ValueTask ReadPayloadAsync(byte[] into, CancellationToken cancel)
    {
        var filled = 0;
        while (filled < into.Length)
        {
            var result = await _reader.ReadAsync(cancel).ConfigureAwait(false);
            var buffer = result.Buffer;
            var take = (int)Math.Min(buffer.Length, into.Length - filled);
            buffer.Slice(0, take).CopyTo(into.AsSpan(filled));
            filled += take;
            _reader.AdvanceTo(buffer.GetPosition(take));
            if (filled < into.Length && result.IsCompleted)
                throw new NbdProtocolViolation($"connection closed after {filled} of {into.Length} B");
        }
    }

    /// <summary>Reads and drops <paramref name="count"/> bytes (an oversized payload), holding none of them.</summary>
    private async ValueTask SkipAsync(long count, CancellationToken cancel)
    {
        while (count > 0)
        {
            var result = await _reader.ReadAsync(cancel).ConfigureAwait(false);
            var take = Math.Min(result.Buffer.Length, count);
            count -= take;
            _reader.AdvanceTo(result.Buffer.GetPosition(take));
            if (count > 0 && result.IsCompleted)
                throw new NbdProtocolViolation($"connection closed with {count} B of a payload still due");
        }
    }
}

/// <summary>A transmission request header (28 bytes, big-endian).</summary>
internal readonly record struct NbdRequest(uint Magic, ushort Flags, ushort Type, ulong Handle, ulong Offset, uint Length)
{
    public static NbdRequest Parse(ReadOnlySequence<byte> header)
    {
        Span<byte> h = stackalloc byte[RequestHeaderSize];
        header.CopyTo(h);
        return new NbdRequest(
            BinaryPrimitives.ReadUInt32BigEndian(h),
            BinaryPrimitives.ReadUInt16BigEndian(h[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(h[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(h[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(h[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(h[24..]));
    }
}

/// <summary>A request read and not yet answered; <see cref="Bytes"/> is its share of the budget (null: not admitted).</summary>
internal sealed class InFlightRequest(ulong handle, long? bytes)
{
    private int _claimed;

    public ulong Handle { get; } = handle;

    public long? Bytes { get; } = bytes;

    /// <summary>True for the one caller that may answer it.</summary>
    public bool Claim() => Interlocked.Exchange(ref _claimed, 1) == 0;
}
