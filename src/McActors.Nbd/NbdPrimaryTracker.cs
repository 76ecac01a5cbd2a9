using Akka.Actor;
using McActors.Replication;

namespace McActors.Nbd;

/// <summary>
/// Keeps the node's <see cref="NbdExportSlot"/> told who is primary and where it serves NBD (from
/// the replica's <see cref="PrimaryLocated"/> events), so a refused client learns where to go.
/// </summary>
public sealed class NbdPrimaryTracker : ReceiveActor
{
    public NbdPrimaryTracker(NbdExportSlot slot) =>
        Receive<PrimaryLocated>(m => slot.SetPrimary(m.Primary, m.PrimaryNbd));

    public static Props Props(NbdExportSlot slot) => Akka.Actor.Props.Create(() => new NbdPrimaryTracker(slot));

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(PrimaryLocated));

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);
}
