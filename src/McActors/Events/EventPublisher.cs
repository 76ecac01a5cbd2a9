using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;

namespace McActors.Events;

/// <summary>
/// How the coordinator publishes: on the cluster-wide topic (every node's <see cref="EventRelay"/>
/// puts it on its EventStream, this node's included), or straight on the EventStream of a system
/// that is not a cluster (tests, a single process).
/// </summary>
public sealed class EventPublisher(ActorSystem system)
{
    private readonly IActorRef? _mediator =
        ((ExtendedActorSystem)system).Provider is ClusterActorRefProvider ? DistributedPubSub.Get(system).Mediator : null;

    public void Publish(IMcActorsEvent e)
    {
        if (_mediator is null)
            system.EventStream.Publish(e);
        else
            _mediator.Tell(new Publish(McActorsEvents.TopicOf(e), e));
    }
}
