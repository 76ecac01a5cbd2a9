namespace McActors.Nbd;

/// <summary>
/// Bounds what one connection has in flight: requests and payload bytes. Only the connection's reader
/// waits on it (one waiter at a time); replies release. A request larger than the whole byte budget
/// still goes through alone, so nothing waits forever.
/// </summary>
internal sealed class RequestBudget(int maxRequests, long maxBytes)
{
    private readonly Lock _lock = new();
    private int _requests;
    private long _bytes;
    private TaskCompletionSource? _changed;

    public int InFlight
    {
        get
        {
            lock (_lock)
                return _requests;
        }
    }

    public async ValueTask AcquireAsync(long bytes, CancellationToken cancel)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_requests == 0 || (_requests < maxRequests && _bytes + bytes <= maxBytes))
                {
                    _requests++;
                    _bytes += bytes;
                    return;
                }
                wait = (_changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await wait.WaitAsync(cancel).ConfigureAwait(false);
        }
    }

    public void Release(long bytes)
    {
        TaskCompletionSource? changed;
        lock (_lock)
        {
            _requests--;
            _bytes -= bytes;
            (changed, _changed) = (_changed, null);
        }
        changed?.TrySetResult();
    }

    /// <summary>Completes when nothing is in flight.</summary>
    public async Task DrainedAsync(CancellationToken cancel)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_requests == 0)
                    return;
                wait = (_changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await wait.WaitAsync(cancel).ConfigureAwait(false);
        }
    }
}
