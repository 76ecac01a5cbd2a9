using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace McActors.Node.Bench.Nbd;

/// <summary>
/// The QEMU Machine Protocol over a UNIX socket, as much as <c>bench nbd</c> needs: the greeting,
/// capability negotiation, and commands answered by "return" or "error" (events in between are skipped).
/// </summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(stream, Encoding.UTF8);
        _writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
    }

    /// <summary>Connects (retrying while the daemon creates its socket) and leaves capability negotiation mode.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeSpan timeout, CancellationToken cancel)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), deadline.Token);
                var client = new QmpClient(socket);
                var greeting = await client.ReadMessageAsync(deadline.Token);
                if (greeting["QMP"] is null)
                    throw new BenchFailedException($"QMP at {socketPath}: expected a greeting, got {greeting.ToJsonString()}");
                await client.ExecuteAsync("qmp_capabilities", null, deadline.Token);
                return client;
            }
            catch (SocketException) when (!deadline.IsCancellationRequested)
            {
                socket.Dispose();
                await Task.Delay(TimeSpan.FromMilliseconds(50), deadline.Token);
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                socket.Dispose();
                throw new BenchFailedException($"QMP at {socketPath}: no answer within {timeout.TotalSeconds:0} s");
            }
        }
    }

    /// <summary>Sends a command and returns its "return" value; an "error" answer throws with QEMU's description.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancel)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null)
            request["arguments"] = arguments;
        await _writer.WriteLineAsync(request.ToJsonString().AsMemory(), cancel);
        while (true)
        {
            var answer = await ReadMessageAsync(cancel);
            if (answer.ContainsKey("return"))
                return answer["return"];
            if (answer["error"] is { } error)
                throw new BenchFailedException($"QMP {command} failed: {error["desc"]?.GetValue<string>() ?? error.ToJsonString()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _writer.DisposeAsync();
        _reader.Dispose();
        _socket.Dispose();
    }

    private async Task<JsonObject> ReadMessageAsync(CancellationToken cancel)
    {
        var line = await _reader.ReadLineAsync(cancel)
            ?? throw new BenchFailedException("QMP: the daemon closed its monitor socket");
        return JsonNode.Parse(line) as JsonObject
            ?? throw new BenchFailedException($"QMP: not a JSON object: {line}");
    }
}
