using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;

namespace McActors.Events;

/// <summary>
/// One per node (<c>/user/mcactors-events</c>): subscribes to <see cref="McActorsEvents.Topic"/> and
/// republishes every event on this node's EventStream, so that a user's actor needs neither the
/// topic nor the cluster. Started beside the coordinator proxy (CoordinatorSingleton.StartProxy).
/// </summary>
public sealed class EventRelay : ReceiveActor
{
    public const string Name = "mcactors-events";

    private readonly ILoggingAdapter _log = Context.GetLogger();

    public EventRelay()
    {
        Receive<SubscribeAck>(_ => _log.Debug("subscribed to {0}", McActorsEvents.Topic));
        Receive<IMcActorsEvent>(e => Context.System.EventStream.Publish(e));
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new EventRelay());

    protected override void PreStart() =>
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(McActorsEvents.Topic, Self));
}
