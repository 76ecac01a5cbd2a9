namespace McActors.Replication;

/// <summary>What the secondary does with a <see cref="StreamCheckpointReceived"/> of its generation.</summary>
public enum StreamCheckpointVerdict
{
    /// <summary>Received in the current store: it counts.</summary>
    Count,

    /// <summary>Received in a newer store whose StoreReady is still on its way: held until then.</summary>
    Hold,

    /// <summary>Received in a store since reopened or rolled back: the stream resends its writes.</summary>
    Ignore,
}

/// <summary>
/// Which store incarnation the secondary's checkpoint bookkeeping belongs to, without I/O. The gate
/// publishes a store before its StoreReady is sent, so the applier may adopt the new incarnation and
/// deliver a checkpoint first; nothing resends it, so it is held for that StoreReady (only the
/// newest: a later incarnation makes an earlier one stale).
/// </summary>
public sealed class StoreIncarnations
{
    private StreamCheckpointReceived? _held;

    /// <summary>The incarnation of the store the secondary last heard StoreReady from.</summary>
    public long Current { get; private set; }

    /// <summary>A checkpoint of the secondary's generation arrived: whether it counts now.</summary>
    public StreamCheckpointVerdict Received(StreamCheckpointReceived m)
    {
        if (m.Incarnation > Current)
        {
            if (_held is not { } held || m.Incarnation > held.Incarnation || (m.Incarnation == held.Incarnation && m.Epoch > held.Epoch))
                _held = m;
            return StreamCheckpointVerdict.Hold;
        }
        return m.Incarnation < Current ? StreamCheckpointVerdict.Ignore : StreamCheckpointVerdict.Count;
    }

    /// <summary>
    /// Store incarnation <paramref name="incarnation"/> is ready: the held checkpoint to count now, if
    /// it was received in this very store (its writes are in it) for <paramref name="generation"/>.
    /// </summary>
    public long? Ready(long incarnation, long generation)
    {
        Current = incarnation;
        if (_held is not { } held || held.Incarnation > incarnation)
            return null;
        _held = null;
        return held.Incarnation == incarnation && held.Generation == generation ? held.Epoch : null;
    }

    /// <summary>A new generation began: a checkpoint held for the old one is not this one's.</summary>
    public void ClearHeld() => _held = null;
}
