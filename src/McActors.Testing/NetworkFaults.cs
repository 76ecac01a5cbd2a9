using Akka.Actor;
using Akka.Remote;
using Akka.Remote.Transport;

namespace McActors.Testing;

/// <summary>Which way a link fault acts, seen from the system that applies it.</summary>
public enum LinkDirection
{
    /// <summary>Messages from this system to the peer are lost.</summary>
    Send,

    /// <summary>Messages from the peer to this system are lost.</summary>
    Receive,

    Both,
}

/// <summary>
/// Real message loss on an Akka.Remote link, through the throttle transport adapter (the system
/// must run with <see cref="FaultConfig.ThrottleAdapter"/>). A blackholed link stays associated
/// but every message on it is dropped, heartbeats included: the peer becomes unreachable.
/// Applying it on one side is enough to cut both ways with <see cref="LinkDirection.Both"/>.
/// The peer's address may be given with any protocol (akka.tcp or akka.trttl.tcp): the adapter
/// matches on host and port.
/// </summary>
public static class NetworkFaults
{
    public static Task BlackholeAsync(ActorSystem from, Address to, LinkDirection direction = LinkDirection.Both) =>
        SetAsync(from, to, direction, Blackhole.Instance, "blackhole");

    /// <summary>Lifts any fault on the link; messages already dropped stay lost.</summary>
    public static Task HealAsync(ActorSystem from, Address to, LinkDirection direction = LinkDirection.Both) =>
        SetAsync(from, to, direction, Unthrottled.Instance, "heal");

    private static async Task SetAsync(ActorSystem from, Address to, LinkDirection direction, ThrottleMode mode, string what)
    {
        if (to.Host is null || to.Port is null)
            throw new ArgumentException($"{to} is not a remote address", nameof(to));
        // Without the adapter the transport acknowledges the command and does nothing: refuse instead.
        if (!FaultConfig.HasThrottleAdapter(from))
            throw new InvalidOperationException(
                $"cannot {what} {to} from {from.Name}: the throttle transport adapter is not applied (FaultConfig.ThrottleAdapter)");
        var transport = ((ExtendedActorSystem)from).Provider is IRemoteActorRefProvider remote
            ? remote.Transport
            : throw new InvalidOperationException($"{from.Name} has no remoting (akka.actor.provider = remote or cluster)");
        var applied = await transport.ManagementCommand(new SetThrottle(to, Map(direction), mode));
        if (!applied)
            throw new InvalidOperationException(
                $"cannot {what} {to} from {from.Name}: is the throttle transport adapter applied? (FaultConfig.ThrottleAdapter)");
    }

    private static ThrottleTransportAdapter.Direction Map(LinkDirection direction) => direction switch
    {
        LinkDirection.Send => ThrottleTransportAdapter.Direction.Send,
        LinkDirection.Receive => ThrottleTransportAdapter.Direction.Receive,
        _ => ThrottleTransportAdapter.Direction.Both,
    };
}
