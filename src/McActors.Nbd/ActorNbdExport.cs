using Akka.Actor;

namespace McActors.Nbd;

/// <summary>
/// The export as the NBD server sees it, backed by an <see cref="NbdGuestActor"/>: each call is one
/// message carrying its completion. When the guest stops, <see cref="Closed"/> is cancelled and every
/// call still waiting ends with NBD_ESHUTDOWN (the connections close; clients reconnect to the new primary).
/// </summary>
internal sealed class ActorNbdExport : INbdExport
{
    private readonly IActorRef _guest;
    private readonly CancellationTokenSource _closed = new();
    private readonly byte[] _zeroChunk;

    public ActorNbdExport(IActorRef guest, long sizeBytes, int zeroChunkBytes)
    {
        _guest = guest;
        SizeBytes = sizeBytes;
        _zeroChunk = new byte[zeroChunkBytes];
    }

    public long SizeBytes { get; }

    public CancellationToken Closed => _closed.Token;

    // Every write reaches the one primary through the one guest actor and completes only once committed,
    // so a FLUSH on any connection finds every write completed on every connection committed.
    public bool FlushCoversAllConnections => true;

    public void Close() => _closed.Cancel();

    public async ValueTask<byte[]> ReadAsync(long offset, int length)
    {
        var done = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        _guest.Tell(new NbdReadRequest(offset, length, done));
        return await Await(done.Task).ConfigureAwait(false);
    }

    public async ValueTask WriteAsync(long offset, byte[] data, bool fua)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _guest.Tell(new NbdWriteRequest(offset, data, fua, done));
        await Await(done.Task).ConfigureAwait(false);
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, bool fua)
    {
        // Chunks of the one zero buffer (the disk never changes a write's data); the tail gets its own.
        // They run concurrently: the primary and the data plane keep their order and back-pressure.
        var writes = new List<Task>();
        for (var at = offset; at < offset + length; at += _zeroChunk.Length)
        {
            var size = (int)Math.Min(_zeroChunk.Length, offset + length - at);
            var data = size == _zeroChunk.Length ? _zeroChunk : new byte[size];
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _guest.Tell(new NbdWriteRequest(at, data, false, done));
            writes.Add(done.Task);
        }
        await Await(Task.WhenAll(writes)).ConfigureAwait(false);
        if (fua)
            await FlushAsync().ConfigureAwait(false);
    }

    // A hint the spec lets a server ignore: the image keeps the old bytes (and nothing needs replicating).
    public ValueTask TrimAsync(long offset, long length, bool fua) => ValueTask.CompletedTask;

    public async ValueTask FlushAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _guest.Tell(new NbdFlushRequest(done));
        await Await(done.Task).ConfigureAwait(false);
    }

    private async Task Await(Task task)
    {
        try
        {
            await task.WaitAsync(_closed.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested)
        {
            throw new NbdErrorException(NbdProtocol.EShutdown, "the export closed (this node is no longer primary)");
        }
    }

    private async Task<T> Await<T>(Task<T> task)
    {
        try
        {
            return await task.WaitAsync(_closed.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested)
        {
            throw new NbdErrorException(NbdProtocol.EShutdown, "the export closed (this node is no longer primary)");
        }
    }
}
