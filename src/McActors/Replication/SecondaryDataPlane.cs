using System.Net;
using Akka.Actor;
using Akka.Event;
using McActors.DataPlane;
using McActors.Protocol;

namespace McActors.Replication;

/// <summary>
/// The secondary's end of the data plane: the listener on its endpoint and the
/// <see cref="StreamApplier"/> behind it, opened at the first activation and kept across
/// generations (a new one only raises the fence). Owned by the SecondaryActor, used on its thread.
/// </summary>
internal sealed class SecondaryDataPlane(IPEndPoint endPoint, DataPlaneOptions options, ILoggingAdapter log)
{
    private StreamApplier? _applier;
    private DataPlaneListener? _listener;

    public IPEndPoint EndPoint => endPoint;

    public bool IsOpen => _listener is not null;

    public long CopiedBytes => _applier?.CopiedBytes ?? 0;

    public long WritesApplied => _applier?.WritesApplied ?? 0;

    public long BytesApplied => _applier?.BytesApplied ?? 0;

    public long? ConnectedGeneration => _listener?.CurrentGeneration;

    public int Port => _listener?.Port ?? 0;

    public IPEndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    /// <summary>Starts listening for <paramref name="assignment"/>'s stream; throws a <see cref="System.Net.Sockets.SocketException"/> if the endpoint cannot be bound.</summary>
    public void Open(StoreGate gate, IActorRef secondary, GuestStateFiles states, AssignSecondary assignment, bool joining)
    {
        _applier = new StreamApplier(gate, secondary, states, assignment.Generation, joining);
        _listener = new DataPlaneListener(endPoint, new DataPlaneVolume(assignment.Volume.VolumeId, assignment.Volume.BlockSize), _applier, options).Start();
    }

    /// <summary>The open stream follows <paramref name="generation"/> now.</summary>
    public void Reassign(long generation) => _applier!.Reassign(generation);

    public void Committed(long epoch) => _applier?.Committed(epoch);

    /// <summary>Older primaries are refused from now on (and a connected one is closed); a failure propagates.</summary>
    public void Fence(long generation) => _listener!.RaiseFenceAsync(generation).Wait(TimeSpan.FromSeconds(10));

    /// <summary>As <see cref="Fence"/> if open, a failure only logged: the stream of the old generation breaks anyway.</summary>
    public void TryFence(long generation)
    {
        if (_listener is null)
            return;
        try
        {
            Fence(generation);
        }
        catch (AggregateException e)
        {
            log.Warning("raising the data-plane fence to generation {0}: {1}", generation, e.InnerException?.Message);
        }
    }

    /// <summary>Closes the data-plane endpoint; the primary is told this secondary is shutting down.</summary>
    public void Close()
    {
        if (_listener is null)
            return;
        try
        {
            _listener.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException e)
        {
            log.Warning("closing the data-plane listener failed: {0}", e.InnerException?.Message);
        }
        _listener = null;
    }
}
