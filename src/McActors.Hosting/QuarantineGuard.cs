using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;

namespace McActors.Hosting;

/// <summary>
/// Stops a node that a peer has quarantined. A peer quarantines this node's incarnation when the
/// cluster removed it (downed while it was paused or cut off); Akka.Cluster does not act on
/// <see cref="ThisActorSystemQuarantinedEvent"/>, so without this the node would keep running on
/// its stale view: peers look alive until their heartbeats stop, then its own Split Brain
/// Resolver may down them and start a coordinator of its own. A pause shorter than
/// <c>mcactors.node.pause-limit</c> but longer than the cluster's downing time is exactly that
/// case (<see cref="PauseDetector"/> handles the longer ones). The node downs itself and exits
/// (code 3); its supervisor restarts it as a new member.
/// </summary>
public sealed class QuarantineGuard : ReceiveActor
{
    public static Props Props() => Akka.Actor.Props.Create(() => new QuarantineGuard());

    public QuarantineGuard()
    {
        Receive<ThisActorSystemQuarantinedEvent>(e =>
        {
            var cluster = Cluster.Get(Context.System);
            if (!cluster.State.Members.Any(m => m.Address.Equals(e.RemoteAddress)))
            {
                // Only a member's word counts: anything else that reaches the port is no judge of membership.
                Context.GetLogger().Warning("{0}, not a member, quarantined this node; ignored", e.RemoteAddress);
                return;
            }
            Context.GetLogger().Error("{0} quarantined this node ({1}): the cluster removed it, so it leaves (downs itself) rather than act on a stale view",
                e.RemoteAddress, e.LocalAddress);
            cluster.Down(cluster.SelfAddress);
        });
    }

    protected override void PreStart() => Context.System.EventStream.Subscribe<ThisActorSystemQuarantinedEvent>(Self);
}
