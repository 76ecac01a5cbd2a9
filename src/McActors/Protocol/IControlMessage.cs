namespace McActors.Protocol;

/// <summary>
/// Marker of every message that crosses nodes on Akka.Remote (the control plane); bound to one
/// serializer in src/McActors/reference.conf. Bulk data (writes, guest state) never implements it:
/// it travels on the data plane.
/// </summary>
public interface IControlMessage;

/// <summary>A control message stamped with the generation (failover count) it belongs to, for fencing.</summary>
public interface IFencedMessage : IControlMessage
{
    long Generation { get; }
}
