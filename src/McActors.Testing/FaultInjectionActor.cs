using Akka.Actor;
using Akka.Event;

namespace McActors.Testing;

/// <summary>
/// Lets another process inject faults into this node: its store disk (through the node's
/// <see cref="StoreFaultInjector"/>) and its Akka.Remote links (through the throttle adapter).
/// A node starts it at <c>/user/fault-injection</c> only when
/// <c>mcactors.testing.fault-injection = on</c>. A request that cannot be done is answered with
/// <see cref="Status.Failure"/>.
/// </summary>
public sealed class FaultInjectionActor : ReceiveActor
{
    public const string Name = "fault-injection";

    private readonly ILoggingAdapter _log = Context.GetLogger();

    public FaultInjectionActor(StoreFaultInjector store)
    {
        Receive<InjectStoreFault>(m =>
        {
            try
            {
                switch (m.Kind)
                {
                    case StoreFaultKind.IOError: store.FailAfterWrites(m.AfterWrites); break;
                    case StoreFaultKind.NoSpace: store.NoSpace(m.AfterWrites); break;
                    case StoreFaultKind.SyncError: store.FailSync(); break;
                    case StoreFaultKind.Slow: store.SlowWrites(m.Delay); break;
                    case StoreFaultKind.Heal: store.Heal(); break;
                    default: throw new ArgumentOutOfRangeException(nameof(m), $"unknown store fault {m.Kind}");
                }
                Reply($"store disk: {store.Description}");
            }
            catch (ArgumentException e)
            {
                Sender.Tell(new Status.Failure(e));
            }
        });
        ReceiveAsync<BlackholeLink>(m => Link(m.Address, blackhole: true));
        ReceiveAsync<HealLink>(m => Link(m.Address, blackhole: false));
    }

    public static Props Props(StoreFaultInjector store) => Akka.Actor.Props.Create(() => new FaultInjectionActor(store));

    private async Task Link(string address, bool blackhole)
    {
        var sender = Sender;
        try
        {
            var to = Address.Parse(address);
            if (blackhole)
                await NetworkFaults.BlackholeAsync(Context.System, to);
            else
                await NetworkFaults.HealAsync(Context.System, to);
            Reply($"link to {to}: {(blackhole ? "blackholed" : "healed")}", sender);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or UriFormatException)
        {
            sender.Tell(new Status.Failure(e));
        }
    }

    private void Reply(string description, IActorRef? to = null)
    {
        _log.Warning("fault injected: {0}", description);
        (to ?? Sender).Tell(new FaultInjected(description));
    }
}

/// <summary>What a node does when <c>mcactors.testing.fault-injection = on</c>.</summary>
public static class FaultInjection
{
    /// <summary>Starts <see cref="FaultInjectionActor"/> at <c>/user/fault-injection</c>, driving <paramref name="store"/>.</summary>
    public static IActorRef Start(ActorSystem system, StoreFaultInjector store) =>
        system.ActorOf(FaultInjectionActor.Props(store), FaultInjectionActor.Name);
}
