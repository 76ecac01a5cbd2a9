using McActors.DataPlane;

namespace McActors.Replication;

/// <summary>A stream that failed a send, or is to be dropped: which secondary, and why.</summary>
public sealed record StreamFailure(string Id, IReplicaStream Stream, Exception Error);

/// <summary>
/// One frame handed to every stream: <see cref="Failed"/> threw at once; <see cref="Waiting"/> (null
/// if every send completed at once) settles when every send that waited on a full window did,
/// with those that failed.
/// </summary>
public sealed record FanOutSend(IReadOnlyList<StreamFailure> Failed, Task<IReadOnlyList<StreamFailure>>? Waiting);

/// <summary>
/// The primary's streams to its secondaries and the fan-out of each frame to all of them, with
/// back-pressure: <see cref="Send"/> says whether a full window holds the frame, the actor waits
/// for it (stashing everything else) and drops what failed. Kept in assignment order, so status
/// and logs list the secondaries as the coordinator did. Not thread-safe: the actor's alone.
/// </summary>
public sealed class ReplicaFanOut
{
    private readonly List<(string Id, IReplicaStream Stream)> _streams = [];
    // The resync attempt that brought each joined stream in (none for those the assignment named):
    // a late LeftReplicaSet about an earlier membership must not cut the stream of a later one.
    private readonly Dictionary<IReplicaStream, long> _joinedBy = new(ReferenceEqualityComparer.Instance);
    private List<(string Id, IReplicaStream Stream, Task Send)> _waiting = [];

    public int Count => _streams.Count;

    public IReadOnlyList<string> Ids => [.. _streams.Select(s => s.Id)];

    /// <summary>Each stream's unacknowledged window.</summary>
    public IReadOnlyDictionary<string, long> OutstandingBytes => _streams.ToDictionary(s => s.Id, s => s.Stream.OutstandingBytes);

    /// <summary>The streams to <paramref name="id"/> (at most one, but a joiner may replace one being dropped).</summary>
    public IReadOnlyList<(string Id, IReplicaStream Stream)> To(string id) => [.. _streams.Where(s => s.Id == id)];

    public bool Contains(IReplicaStream stream) => _streams.Any(s => ReferenceEquals(s.Stream, stream));

    /// <summary>True if every stream goes to <paramref name="id"/> (or there is none).</summary>
    public bool OnlyTo(string? id) => _streams.All(s => s.Id == id);

    /// <summary>Adds a stream; <paramref name="joinedBy"/> is the resync attempt that brought it in.</summary>
    public void Add(string id, IReplicaStream stream, long? joinedBy = null)
    {
        _streams.Add((id, stream));
        if (joinedBy is { } attempt)
            _joinedBy[stream] = attempt;
    }

    /// <summary>The resync attempt that brought <paramref name="stream"/> in, if it joined by one.</summary>
    public long? JoinedBy(IReplicaStream stream) => _joinedBy.TryGetValue(stream, out var attempt) ? attempt : null;

    /// <summary>
    /// Starts one frame's send on every stream (on those to <paramref name="only"/> if given). A send
    /// that completes at once is consumed here; one that waits on a full window is in
    /// <see cref="FanOutSend.Waiting"/> and in <see cref="Stalled"/> until it completes.
    /// </summary>
    public FanOutSend Send(Func<IReplicaStream, ValueTask> send, string? only = null)
    {
        var failed = new List<StreamFailure>();
        List<Task<StreamFailure?>>? pending = null;
        _waiting = [];
        foreach (var (id, stream) in _streams.Where(s => only is null || s.Id == only).ToList())
        {
            ValueTask sending;
            try
            {
                sending = send(stream);
            }
            catch (Exception e)
            {
                failed.Add(new StreamFailure(id, stream, e));
                continue;
            }
            if (sending.IsCompleted)
            {
                try
                {
                    sending.GetAwaiter().GetResult(); // consumes the (possibly pooled) ValueTask
                }
                catch (Exception e)
                {
                    failed.Add(new StreamFailure(id, stream, e));
                }
                continue;
            }
            var observed = Observe(id, stream, sending);
            (pending ??= []).Add(observed);
            _waiting.Add((id, stream, observed));
        }
        return new FanOutSend(failed, pending is null ? null : Settled(pending));
    }

    /// <summary>The streams whose send of the last frame still waits on a full window.</summary>
    public IReadOnlyList<(string Id, IReplicaStream Stream)> Stalled => [.. _waiting.Where(w => !w.Send.IsCompleted).Select(w => (w.Id, w.Stream))];

    /// <summary>The last frame's sends have settled: none is stalled any more.</summary>
    public void SendsSettled() => _waiting = [];

    /// <summary>
    /// Removes a stream and disposes it in the background (which fails a send waiting on it, so
    /// the wait settles). False if it was removed already.
    /// </summary>
    public bool Remove(string id, IReplicaStream stream)
    {
        var index = _streams.FindIndex(s => s.Id == id && ReferenceEquals(s.Stream, stream));
        if (index < 0)
            return false;
        _streams.RemoveAt(index);
        _joinedBy.Remove(stream);
        _ = stream.DisposeAsync().AsTask().ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
        return true;
    }

    /// <summary>Disposes every stream; completes when all have closed.</summary>
    public Task CloseAll()
    {
        var closing = _streams.Select(s => s.Stream.DisposeAsync().AsTask()).ToArray();
        _streams.Clear();
        _joinedBy.Clear();
        _waiting = [];
        return Task.WhenAll(closing);
    }

    private static async Task<IReadOnlyList<StreamFailure>> Settled(List<Task<StreamFailure?>> pending)
    {
        var results = await Task.WhenAll(pending).ConfigureAwait(false);
        return [.. results.OfType<StreamFailure>()];
    }

    private static async Task<StreamFailure?> Observe(string id, IReplicaStream stream, ValueTask sending)
    {
        try
        {
            await sending.ConfigureAwait(false);
            return null;
        }
        catch (Exception e)
        {
            return new StreamFailure(id, stream, e);
        }
    }
}
