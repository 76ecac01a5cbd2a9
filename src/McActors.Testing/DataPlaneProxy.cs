using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using McActors.DataPlane;

namespace McActors.Testing;

/// <summary>The header of a frame passing through a <see cref="DataPlaneProxy"/> (primary → secondary).</summary>
public readonly record struct ProxiedFrame(FrameType Type, long Generation, long Epoch, long Sequence, int BodyLength);

/// <summary>
/// A TCP proxy between a primary and a secondary's data-plane listener that knows where frames
/// begin and end (see <see cref="FrameCodec"/>), so it can lose or delay whole frames as a bad
/// network or a buggy peer would, leaving the bytes of the other frames intact. Faults act on
/// the primary → secondary direction; the secondary's acks pass through untouched, except when
/// the proxy is blackholed (then nothing passes either way, and the connections stay open).
/// Point the primary at <see cref="EndPoint"/> instead of the listener.
/// </summary>
public sealed class DataPlaneProxy : IAsyncDisposable
{
    private readonly IPEndPoint _target;
    private readonly int _maxBodyBytes;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<Socket> _sockets = [];
    private readonly List<Task> _pumps = [];
    private readonly Task _accepting;
    private DropRule? _drop;
    private long _delayTicks;
    private volatile bool _blackholed;
    private long _forwarded, _dropped, _connections;

    private DataPlaneProxy(IPEndPoint target, TcpListener listener, int maxPayloadBytes)
    {
        _target = target;
        // A frame's body is its type fields (at most the handshake's) plus its payload.
        _maxBodyBytes = maxPayloadBytes + FrameCodec.HeaderSize;
        _listener = listener;
        _accepting = AcceptAsync();
    }

    /// <summary>
    /// Starts a proxy on a free loopback port that forwards to <paramref name="target"/>.
    /// <paramref name="maxPayloadBytes"/> is the secondary's mcactors.data-plane.max-payload: a
    /// longer frame means the proxy lost the frame boundaries, and it closes the connection.
    /// </summary>
    public static DataPlaneProxy Start(IPEndPoint target, int maxPayloadBytes = FrameCodec.DefaultMaxPayloadBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPayloadBytes);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return new DataPlaneProxy(target, listener, maxPayloadBytes);
    }

    /// <summary>Where the primary connects instead of the secondary.</summary>
    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    public int Port => EndPoint.Port;

    /// <summary>Frames forwarded to the secondary.</summary>
    public long FramesForwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Frames lost on purpose (dropped or blackholed).</summary>
    public long FramesDropped => Interlocked.Read(ref _dropped);

    /// <summary>Connections accepted from primaries.</summary>
    public long Connections => Interlocked.Read(ref _connections);

    /// <summary>Every frame reaches the secondary <paramref name="delay"/> after it reached the proxy; order is kept.</summary>
    public void Delay(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        Interlocked.Exchange(ref _delayTicks, delay.Ticks);
    }

    /// <summary>Loses the next <paramref name="count"/> frames that <paramref name="match"/> accepts (all frames if null).</summary>
    public void DropNext(int count, Func<ProxiedFrame, bool>? match = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        lock (_gate)
            _drop = new DropRule(count, match ?? (_ => true));
    }

    /// <summary>Loses the next <paramref name="count"/> frames of <paramref name="type"/>.</summary>
    public void DropNext(int count, FrameType type) => DropNext(count, f => f.Type == type);

    /// <summary>Nothing passes, either way, until <see cref="Heal"/>; what arrives meanwhile is lost.</summary>
    public void Blackhole() => _blackholed = true;

    /// <summary>No delay, no drops, no blackhole.</summary>
    public void Heal()
    {
        lock (_gate)
            _drop = null;
        Interlocked.Exchange(ref _delayTicks, 0);
        _blackholed = false;
    }

    /// <summary>Closes every proxied connection at once (both ends see a reset), keeping the proxy listening.</summary>
    public void CutConnections()
    {
        lock (_gate)
        {
            foreach (var s in _sockets)
                s.Close(0);
            _sockets.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            Interlocked.Increment(ref _connections);
            var server = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.NoDelay = true;
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                client.Close(0);
                server.Dispose();
                continue;
            }
            lock (_gate)
            {
                _sockets.Add(client);
                _sockets.Add(server);
                var pair = new Pair(client, server);
                _pumps.Add(ForwardFramesAsync(pair));
                _pumps.Add(PassBytesAsync(pair));
            }
        }
    }

    /// <summary>Primary → secondary: frame by frame, through the fault rules, then a delay queue.</summary>
    private async Task ForwardFramesAsync(Pair pair)
    {
        var (from, to) = (pair.Primary, pair.Secondary);
        var queue = Channel.CreateUnbounded<(byte[] Frame, long Due)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var writer = WriteDueAsync(queue.Reader, to);
        var header = new byte[FrameCodec.HeaderSize];
        try
        {
            while (true)
            {
                if (!await ReadExactlyAsync(from, header))
                    break;
                if (header[0] != (byte)'M' || header[1] != (byte)'D')
                    throw new InvalidDataException("not a data-plane frame: the proxy cannot find frame boundaries");
                var body = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
                if (body < 0 || body > _maxBodyBytes)
                    throw new InvalidDataException($"frame body of {body} B");
                var frame = new byte[FrameCodec.HeaderSize + body + FrameCodec.ChecksumSize];
                header.CopyTo(frame, 0);
                if (!await ReadExactlyAsync(from, frame.AsMemory(FrameCodec.HeaderSize)))
                    break;
                var info = new ProxiedFrame((FrameType)header[2], BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8)),
                    BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(16)), BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24)), body);
                if (_blackholed || ShouldDrop(info))
                {
                    Interlocked.Increment(ref _dropped);
                    continue;
                }
                var delay = Interlocked.Read(ref _delayTicks);
                await queue.Writer.WriteAsync((frame, delay == 0 ? 0 : Environment.TickCount64 + delay / TimeSpan.TicksPerMillisecond));
            }
        }
        catch (InvalidDataException)
        {
            Close(pair);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            queue.Writer.TryComplete();
            await writer;
            Done(pair, to);
        }
    }

    private async Task WriteDueAsync(ChannelReader<(byte[] Frame, long Due)> frames, Socket to)
    {
        try
        {
            await foreach (var (frame, due) in frames.ReadAllAsync(_stop.Token))
            {
                var wait = due - Environment.TickCount64;
                if (wait > 0)
                    await Task.Delay(TimeSpan.FromMilliseconds(wait), _stop.Token);
                if (_blackholed)
                {
                    Interlocked.Increment(ref _dropped);
                    continue;
                }
                await to.SendAsync(frame, SocketFlags.None, _stop.Token);
                Interlocked.Increment(ref _forwarded);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    /// <summary>Secondary → primary: bytes as they come, unless blackholed.</summary>
    private async Task PassBytesAsync(Pair pair)
    {
        var (from, to) = (pair.Secondary, pair.Primary);
        var buffer = new byte[64 << 10];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                    break;
                if (!_blackholed)
                    await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            Done(pair, to);
        }
    }

    private bool ShouldDrop(ProxiedFrame frame)
    {
        lock (_gate)
        {
            if (_drop is null || !_drop.Match(frame))
                return false;
            if (--_drop.Remaining == 0)
                _drop = null;
            return true;
        }
    }

    private async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> buffer)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await socket.ReceiveAsync(buffer[read..], SocketFlags.None, _stop.Token);
            if (n == 0)
                return false;
            read += n;
        }
        return true;
    }

    private Task<bool> ReadExactlyAsync(Socket socket, byte[] buffer) => ReadExactlyAsync(socket, buffer.AsMemory());

    // One direction ended: pass the end on as a half-close (a FIN, not a reset), so the other
    // side still reads what was sent before it, an error frame included. When both directions
    // have ended, the sockets go.
    private void Done(Pair pair, Socket to)
    {
        try
        {
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        if (Interlocked.Increment(ref pair.Ended) == 2)
            Close(pair);
    }

    private void Close(Pair pair)
    {
        lock (_gate)
        {
            foreach (var s in new[] { pair.Primary, pair.Secondary })
            {
                s.Dispose();
                _sockets.Remove(s);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        CutConnections();
        Task[] pumps;
        lock (_gate)
            pumps = [.. _pumps];
        await Task.WhenAll(pumps);
        _stop.Dispose();
    }

    private sealed class Pair(Socket primary, Socket secondary)
    {
        public Socket Primary { get; } = primary;
        public Socket Secondary { get; } = secondary;
        public int Ended;
    }

    private sealed class DropRule(int count, Func<ProxiedFrame, bool> match)
    {
        public int Remaining = count;
        public Func<ProxiedFrame, bool> Match { get; } = match;
    }
}
