using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using McActors.Nbd;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Node.Chaos.Nbd;

/// <summary>The connection ended (closed, reset, aborted) with this request unanswered: it may or may not have been applied.</summary>
public sealed class NbdConnectionLostException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>The server answered the request with NBD error <see cref="Error"/> (an errno of <see cref="NbdProtocol"/>).</summary>
public sealed class NbdCommandException(uint error, string request, string server) : Exception($"{request}: NBD error {NbdClient.ErrorName(error)} from {server}")
{
    public uint Error { get; } = error;
    public string Server { get; } = server;

    /// <summary>How many times the request was sent (across reconnects) before this reply: set by <see cref="ReconnectingNbdSession"/>.</summary>
    public int Sends { get; internal set; } = 1;
}

/// <summary>
/// The server refused the export in the handshake (an NBD_REP_ERR_* reply to NBD_OPT_GO) with
/// <see cref="Message"/>; <see cref="PrimaryAddress"/> is the host:port the refusal names as where
/// the primary serves NBD, if it names one.
/// </summary>
public sealed partial class NbdRefusedException(uint reply, string message)
    : Exception($"export refused (0x{reply:x8}): {message}")
{
    public uint Reply { get; } = reply;
    public string Refusal { get; } = message;

    /// <summary>The primary's NBD address from a McActors refusal ("... serves NBD at HOST:PORT ..."), or null.</summary>
    public string? PrimaryAddress => ServesAt().Match(Refusal) is { Success: true } m ? m.Groups[1].Value : null;

    [GeneratedRegex(@"serves NBD at ([^\s()]+:\d+)")]
    private static partial Regex ServesAt();
}

/// <summary>
/// A real NBD client over TCP (NetworkBlockDevice/nbd doc/proto.md): fixed newstyle handshake with
/// NBD_OPT_GO (export size, transmission flags, block sizes), then pipelined READ / WRITE (FUA
/// optional) / FLUSH with simple replies matched by handle, in any order. Every failure reaches
/// the caller as what it is: an error reply as <see cref="NbdCommandException"/>, a refusal as
/// <see cref="NbdRefusedException"/>, a dropped connection as <see cref="NbdConnectionLostException"/>
/// for every request still unanswered. Thread-safe: many requests may be outstanding at once.
/// </summary>
public sealed class NbdClient : IAsyncDisposable
{
    private const uint StructuredReplyMagic = 0x668e33ef;
    private readonly Socket _socket;
    private NetworkStream? _stream; // once connected
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, Pending> _pending = [];
    private readonly TaskCompletionSource _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Exception? _lostBecause;
    private ulong _handle;
    private Task _readLoop = Task.CompletedTask;

    private NbdClient(Socket socket, string address)
    {
        _socket = socket;
        Address = address;
    }

    public string Address { get; }
    private NetworkStream Stream => _stream ?? throw new NbdConnectionLostException($"nbd {Address}: not connected");
    public long SizeBytes { get; private set; }
    public ushort TransmissionFlags { get; private set; }
    public int MinBlockSize { get; private set; } = 1;
    public bool CanMultiConn => (TransmissionFlags & TransCanMultiConn) != 0;
    public bool CanFua => (TransmissionFlags & TransSendFua) != 0;
    public bool CanFlush => (TransmissionFlags & TransSendFlush) != 0;

    /// <summary>Completes when the connection is gone (every outstanding request then failed).</summary>
    public Task Lost => _lost.Task;

    /// <summary>Connects to <paramref name="address"/> (host:port) and negotiates export <paramref name="exportName"/> ("" is the default one) within <paramref name="timeout"/>.</summary>
    public static async Task<NbdClient> ConnectAsync(string address, string exportName, TimeSpan timeout, CancellationToken cancel)
    {
        var endpoint = NbdServer.ParseEndpoint(address);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var client = new NbdClient(socket, address);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        limit.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endpoint, limit.Token).ConfigureAwait(false);
            client._stream = new NetworkStream(socket, ownsSocket: true);
            await client.HandshakeAsync(exportName, limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new NbdConnectionLostException($"nbd {address}: no handshake within {timeout.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new NbdConnectionLostException($"nbd {address}: {e.Message}", e);
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        client._readLoop = Task.Run(client.ReadLoopAsync, CancellationToken.None);
        return client;
    }

    public async Task<byte[]> ReadAsync(long offset, int length) =>
        await SendAsync(CmdRead, 0, offset, length, default).ConfigureAwait(false) ?? [];

    public Task WriteAsync(long offset, ReadOnlyMemory<byte> data, bool fua) =>
        SendAsync(CmdWrite, fua ? CmdFlagFua : (ushort)0, offset, data.Length, data);

    public Task FlushAsync() => SendAsync(CmdFlush, 0, 0, 0, default);

    /// <summary>Drops the connection now: every outstanding request fails with <see cref="NbdConnectionLostException"/>.</summary>
    public void Abort(string why) => Fail(new NbdConnectionLostException($"nbd {Address}: {why}"));

    public async ValueTask DisposeAsync()
    {
        Fail(new NbdConnectionLostException($"nbd {Address}: client closed"));
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
        }
        _sendLock.Dispose();
    }

    public static string ErrorName(uint error) => error switch
    {
        EPerm => "EPERM",
        EIo => "EIO",
        ENoMem => "ENOMEM",
        EInval => "EINVAL",
        ENoSpc => "ENOSPC",
        EOverflow => "EOVERFLOW",
        ENotSup => "ENOTSUP",
        EShutdown => "ESHUTDOWN",
        _ => $"errno {error}",
    };

    // ---- handshake ------------------------------------------------------------------------------

    private async Task HandshakeAsync(string exportName, CancellationToken cancel)
    {
        var hello = await ReadExactAsync(18, cancel).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt64BigEndian(hello) != InitMagic || BinaryPrimitives.ReadUInt64BigEndian(hello.AsSpan(8)) != OptionMagic)
            throw new IOException($"nbd {Address}: not an NBD newstyle server (greeting {Convert.ToHexString(hello)})");
        var serverFlags = BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(16));
        if ((serverFlags & FlagFixedNewstyle) == 0)
            throw new IOException($"nbd {Address}: the server does not speak fixed newstyle (flags 0x{serverFlags:x4})");
        var clientFlags = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(clientFlags, ClientFlagFixedNewstyle | ((serverFlags & FlagNoZeroes) != 0 ? ClientFlagNoZeroes : 0));
        await Stream.WriteAsync(clientFlags, cancel).ConfigureAwait(false);

        var name = Encoding.UTF8.GetBytes(exportName);
        var go = new byte[16 + 4 + name.Length + 2 + 2];
        BinaryPrimitives.WriteUInt64BigEndian(go, OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(go.AsSpan(8), OptGo);
        BinaryPrimitives.WriteUInt32BigEndian(go.AsSpan(12), (uint)(go.Length - 16));
        BinaryPrimitives.WriteUInt32BigEndian(go.AsSpan(16), (uint)name.Length);
        name.CopyTo(go, 20);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(20 + name.Length), 1);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(22 + name.Length), InfoBlockSize);
        await Stream.WriteAsync(go, cancel).ConfigureAwait(false);

        var sawExport = false;
        while (true)
        {
            var header = await ReadExactAsync(20, cancel).ConfigureAwait(false);
            if (BinaryPrimitives.ReadUInt64BigEndian(header) != OptionReplyMagic)
                throw new IOException($"nbd {Address}: bad option reply magic 0x{BinaryPrimitives.ReadUInt64BigEndian(header):x16}");
            var option = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            var type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
            if (option != OptGo || length > 1 << 20)
                throw new IOException($"nbd {Address}: option reply for option {option} of {length} B to NBD_OPT_GO");
            var data = await ReadExactAsync((int)length, cancel).ConfigureAwait(false);
            if ((type & RepFlagError) != 0)
            {
                await AbortOptionsAsync(cancel).ConfigureAwait(false);
                throw new NbdRefusedException(type, Encoding.UTF8.GetString(data));
            }
            if (type == RepAck)
            {
                if (!sawExport)
                    throw new IOException($"nbd {Address}: NBD_OPT_GO acknowledged without NBD_INFO_EXPORT");
                return;
            }
            if (type != RepInfo || data.Length < 2)
                continue; // replies we did not ask for are allowed and ignored
            switch (BinaryPrimitives.ReadUInt16BigEndian(data))
            {
                case InfoExport when data.Length >= 12:
                    SizeBytes = (long)BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(2));
                    TransmissionFlags = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
                    sawExport = true;
                    break;
                case InfoBlockSize when data.Length >= 14:
                    MinBlockSize = (int)BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(2));
                    break;
            }
        }
    }

    /// <summary>NBD_OPT_ABORT before closing a refused handshake: the polite end of a negotiation (best effort; no reply awaited).</summary>
    private async Task AbortOptionsAsync(CancellationToken cancel)
    {
        var abort = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(abort, OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(abort.AsSpan(8), OptAbort);
        try
        {
            await Stream.WriteAsync(abort, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
        }
    }

    // ---- transmission ---------------------------------------------------------------------------

    private async Task<byte[]?> SendAsync(ushort type, ushort flags, long offset, int length, ReadOnlyMemory<byte> payload)
    {
        var pending = new Pending(type == CmdRead ? length : 0, Describe(type, flags, offset, length));
        ulong handle;
        lock (_lock)
        {
            if (_lostBecause is { } lost)
                throw new NbdConnectionLostException(lost.Message, lost);
            handle = ++_handle;
            _pending[handle] = pending;
        }
        var header = new byte[RequestHeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(header, RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), handle);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(16), (ulong)offset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(24), (uint)length);
        try
        {
            await _sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                await Stream.WriteAsync(header).ConfigureAwait(false);
                if (type == CmdWrite)
                    await Stream.WriteAsync(payload).ConfigureAwait(false);
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            Fail(new NbdConnectionLostException($"nbd {Address}: sending {pending.What}: {e.Message}", e));
        }
        return await pending.Done.Task.ConfigureAwait(false);
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                var reply = await ReadExactAsync(SimpleReplyHeaderSize, CancellationToken.None).ConfigureAwait(false);
                var magic = BinaryPrimitives.ReadUInt32BigEndian(reply);
                if (magic == StructuredReplyMagic)
                    throw new IOException($"nbd {Address}: a structured reply, which this client did not negotiate");
                if (magic != SimpleReplyMagic)
                    throw new IOException($"nbd {Address}: bad reply magic 0x{magic:x8}");
                var error = BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4));
                var handle = BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(8));
                Pending? pending;
                lock (_lock)
                    _pending.Remove(handle, out pending);
                if (pending is null)
                    throw new IOException($"nbd {Address}: a reply for handle {handle}, which no request has");
                if (error != 0)
                {
                    pending.Done.TrySetException(new NbdCommandException(error, pending.What, Address));
                    continue;
                }
                var data = pending.ReadLength > 0 ? await ReadExactAsync(pending.ReadLength, CancellationToken.None).ConfigureAwait(false) : null;
                pending.Done.TrySetResult(data);
            }
        }
        catch (Exception e)
        {
            Fail(e as NbdConnectionLostException ?? new NbdConnectionLostException($"nbd {Address}: {e.Message}", e));
        }
    }

    private void Fail(NbdConnectionLostException why)
    {
        List<Pending> failed;
        lock (_lock)
        {
            _lostBecause ??= why;
            failed = [.. _pending.Values];
            _pending.Clear();
        }
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _stream?.Dispose();
        _socket.Dispose();
        foreach (var pending in failed)
            pending.Done.TrySetException(new NbdConnectionLostException($"{pending.What} unanswered: {_lostBecause.Message}", _lostBecause));
        _lost.TrySetResult();
    }

    private async Task<byte[]> ReadExactAsync(int count, CancellationToken cancel)
    {
        var buffer = new byte[count];
        var got = 0;
        while (got < count)
        {
            var n = await Stream.ReadAsync(buffer.AsMemory(got), cancel).ConfigureAwait(false);
            if (n == 0)
                throw new NbdConnectionLostException($"nbd {Address}: the server closed the connection");
            got += n;
        }
        return buffer;
    }

    private static string Describe(ushort type, ushort flags, long offset, int length) => type switch
    {
        CmdRead => $"READ {offset}+{length}",
        CmdWrite => $"WRITE{((flags & CmdFlagFua) != 0 ? "+FUA" : "")} {offset}+{length}",
        CmdFlush => "FLUSH",
        _ => $"command {type}",
    };

    private sealed record Pending(int ReadLength, string What)
    {
        public TaskCompletionSource<byte[]?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
