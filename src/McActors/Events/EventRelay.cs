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

    private readonly bool _checkpoints;

    public EventRelay(bool checkpoints)
    {
        _checkpoints = checkpoints;
        Receive<SubscribeAck>(a => _log.Debug("subscribed to {0}", a.Subscribe.Topic));
        Receive<IMcActorsEvent>(e => Context.System.EventStream.Publish(e));
    }

    /// <summary>A relay of every event but CheckpointCommitted, and of that one too if <paramref name="checkpoints"/>.</summary>
    public static Props Props(bool checkpoints) => Akka.Actor.Props.Create(() => new EventRelay(checkpoints));

    protected override void PreStart()
    {
        var mediator = DistributedPubSub.Get(Context.System).Mediator;
        mediator.Tell(new Subscribe(McActorsEvents.Topic, Self));
        if (_checkpoints)
            mediator.Tell(new Subscribe(McActorsEvents.CheckpointsTopic, Self));
    }
}
