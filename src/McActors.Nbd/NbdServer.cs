using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace McActors.Nbd;

/// <summary>
/// An NBD server on one TCP endpoint: accepts any number of connections, each served on its own
/// (<see cref="NbdConnection"/>), all finding their export in one <see cref="INbdExportSource"/>.
/// A connection that misbehaves or vanishes is closed alone; the server stops when disposed.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);
    private readonly Socket _listener;
    private readonly INbdExportSource _source;
    private readonly NbdOptions _options;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<NbdConnection, Task> _connections = new();
    private readonly Task _accepting;

    private NbdServer(Socket listener, INbdExportSource source, NbdOptions options, Action<string> log)
    {
        _listener = listener;
        _source = source;
        _options = options;
        _log = log;
        Endpoint = (IPEndPoint)listener.LocalEndPoint!;
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>Connections open right now (handshaking or transmitting).</summary>
    public int Connections => _connections.Count;

    /// <summary>Listens on <paramref name="endpoint"/> (port 0: any free port, see <see cref="Endpoint"/>).</summary>
    public static NbdServer Start(IPEndPoint endpoint, INbdExportSource source, NbdOptions options, Action<string>? log = null)
    {
        options.Validate();
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endpoint);
            listener.Listen(64);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        return new NbdServer(listener, source, options, log ?? (_ => { }));
    }

    /// <summary>host:port → an endpoint (host an IP address or a name resolving to one).</summary>
    public static IPEndPoint ParseEndpoint(string hostPort)
    {
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostPort.AsSpan(colon + 1), out var port) || port is < 0 or > 65535)
            throw new ArgumentException($"NBD address '{hostPort}' is not host:port");
        var host = hostPort[..colon].Trim('[', ']');
        var address = IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host).FirstOrDefault()
            ?? throw new ArgumentException($"NBD host '{host}' does not resolve");
        return new IPEndPoint(address, port);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _log($"nbd: accept failed: {e.Message}");
                continue;
            }
            if (_connections.Count >= _options.MaxConnections)
            {
                _log($"nbd: {socket.RemoteEndPoint} refused: {_options.MaxConnections} connections already open (mcactors.nbd.max-connections)");
                socket.Dispose();
                continue;
            }
            socket.NoDelay = true;
            var connection = new NbdConnection(socket, _source, _options, _log);
            // Registered before it runs, so that its removal when it ends cannot come first.
            _connections[connection] = Task.CompletedTask;
            _connections.TryUpdate(connection, Task.Run(() => ServeAsync(connection)), Task.CompletedTask);
        }
    }

    private async Task ServeAsync(NbdConnection connection)
    {
        try
        {
            await connection.RunAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // RunAsync handles what a peer can cause; anything else is a bug, but never the server's end.
            _log($"nbd {connection.Peer}: connection failed: {e}");
        }
        finally
        {
            _connections.TryRemove(connection, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
            return;
        _stopping.Cancel();
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        foreach (var connection in _connections.Keys)
            connection.Abort();
        try
        {
            await Task.WhenAll(_connections.Values).WaitAsync(StopGrace).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _log($"nbd: {_connections.Count} connections still closing after {StopGrace.TotalSeconds:0} s");
        }
        _stopping.Dispose();
    }
}
