using McActors.Nbd;

namespace McActors.Node.Chaos.Nbd;

/// <summary>
/// One logical NBD connection that outlives its server, as qemu's with <c>reconnect-delay</c>
/// does: when the connection drops (or a request gets NBD_ESHUTDOWN, or no reply within the request
/// timeout) it connects again, to wherever the primary now is — the address a refusal names
/// ("... serves NBD at HOST:PORT"), else every address <paramref name="candidates"/> lists, the
/// primary first — and RESENDS every request that was in flight without a reply. A request thus
/// ends with a reply (success or an error other than ESHUTDOWN) or when the caller gives up.
/// </summary>
public sealed class ReconnectingNbdSession(
    int connection, string exportName, Func<IReadOnlyList<string>> candidates, TimeSpan requestTimeout, TimeSpan reconnectDelay) : IAsyncDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private NbdClient? _client;
    private string? _hint;
    private int _reconnects = -1; // the first connect is not a reconnect

    public int Connection { get; } = connection;

    /// <summary>Connections made after the first.</summary>
    public int Reconnects => Math.Max(0, _reconnects);

    /// <summary>Refusals seen while looking for the primary, the last few (for a run's notes).</summary>
    public List<string> Refusals { get; } = [];

    public bool CanMultiConn => _client?.CanMultiConn ?? false;

    /// <summary>
    /// Runs <paramref name="request"/> on the current connection, again on the next one after a drop,
    /// until it is answered; returns the result, how many times it was sent, and the server that answered. Throws
    /// <see cref="NbdCommandException"/> for an error reply, <see cref="OperationCanceledException"/>
    /// when <paramref name="giveUp"/> fires first.
    /// </summary>
    public async Task<(T Result, int Sends, string Server)> CallAsync<T>(Func<NbdClient, Task<T>> request, CancellationToken giveUp)
    {
        var sends = 0;
        while (true)
        {
            giveUp.ThrowIfCancellationRequested();
            var client = await CurrentAsync(giveUp).ConfigureAwait(false);
            sends++;
            var call = request(client);
            try
            {
                return (await call.WaitAsync(requestTimeout, giveUp).ConfigureAwait(false), sends, client.Address);
            }
            catch (NbdConnectionLostException)
            {
            }
            catch (NbdCommandException e) when (e.Error == NbdProtocol.EShutdown)
            {
                client.Abort("the server is shutting down (NBD_ESHUTDOWN)");
            }
            catch (NbdCommandException e)
            {
                e.Sends = sends; // the history says how often an error-replied request went out
                throw;
            }
            catch (TimeoutException)
            {
                client.Abort($"no reply within {requestTimeout.TotalSeconds:0} s");
            }
            catch (OperationCanceledException)
            {
                _ = call.ContinueWith(t => _ = t.Exception, TaskScheduler.Default); // answered or not, nobody waits any more
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is { } client)
            await client.DisposeAsync().ConfigureAwait(false);
        _connecting.Dispose();
    }

    private async Task<NbdClient> CurrentAsync(CancellationToken giveUp)
    {
        if (_client is { Lost.IsCompleted: false } current)
            return current;
        await _connecting.WaitAsync(giveUp).ConfigureAwait(false);
        try
        {
            if (_client is { Lost.IsCompleted: false } other)
                return other;
            if (_client is { } old)
                await old.DisposeAsync().ConfigureAwait(false);
            _client = null;
            while (true)
            {
                foreach (var address in Addresses())
                {
                    try
                    {
                        _client = await NbdClient.ConnectAsync(address, exportName, ConnectTimeout, giveUp).ConfigureAwait(false);
                        _hint = address;
                        _reconnects++;
                        return _client;
                    }
                    catch (NbdRefusedException e)
                    {
                        if (e.PrimaryAddress is { } primary && primary != address)
                            _hint = primary;
                        Note($"{address}: {e.Refusal}");
                        if (e.PrimaryAddress is not null)
                            break; // go where it says first
                    }
                    catch (NbdConnectionLostException e)
                    {
                        Note(e.Message);
                    }
                }
                await Task.Delay(reconnectDelay, giveUp).ConfigureAwait(false);
            }
        }
        finally
        {
            _connecting.Release();
        }
    }

    private IEnumerable<string> Addresses()
    {
        var known = candidates();
        return (_hint is null ? known : [_hint, .. known]).Distinct();
    }

    private void Note(string refusal)
    {
        lock (Refusals)
        {
            Refusals.Add(refusal);
            if (Refusals.Count > 8)
                Refusals.RemoveAt(0);
        }
    }
}
