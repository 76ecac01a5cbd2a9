using Akka.Actor;

namespace McActors.Samples.KeyValue;

/// <summary>
/// The store's address on a node (<c>/user/kv-store</c> by convention): it lives as long as the
/// node, while the guest lives only as long as this node is primary. Requests go to the guest
/// that attached itself, or are answered <see cref="NotPrimary"/>.
/// </summary>
public sealed class KeyValueFrontDoor : ReceiveActor
{
    public const string Name = "kv-store";

    private IActorRef? _guest;

    public KeyValueFrontDoor(string node)
    {
        Receive<Attach>(m =>
        {
            _guest = m.Guest;
            Context.Watch(m.Guest);
        });
        Receive<Terminated>(t => t.ActorRef.Equals(_guest), _ => _guest = null);
        Receive<Put>(Forward);
        Receive<Get>(Forward);
        Receive<Verify>(Forward);
        return;

        void Forward(object request)
        {
            if (_guest is null)
                Sender.Tell(new NotPrimary(node));
            else
                _guest.Forward(request);
        }
    }

    public static Props Props(string node) => Akka.Actor.Props.Create(() => new KeyValueFrontDoor(node));

    /// <summary>Guest → front door: serve requests through me until I stop.</summary>
    public sealed record Attach(IActorRef Guest);
}
