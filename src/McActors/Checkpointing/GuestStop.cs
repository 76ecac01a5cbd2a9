using Akka.Actor;
using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>
/// A StopGuest as plain logic: who asked, and the checkpoint the guest stopped at. After a
/// StopGuest the coordinator closes the next epoch once every earlier close is answered, until the
/// primary reports the one its guest stopped at. A close the primary had already done (a
/// coordinator that moved re-drives the checkpoints after the last committed one) or one that
/// began before the StopGuest reached it does not stop the guest, so the stop epoch is the
/// primary's word, never the coordinator's guess.
/// </summary>
public sealed class GuestStop
{
    private readonly List<IActorRef> _requesters = [];

    /// <summary>A StopGuest was asked: no regular epochs any more.</summary>
    public bool Requested { get; private set; }

    /// <summary>The checkpoint the primary said its guest stopped at, once it said so.</summary>
    public long? Epoch { get; private set; }

    /// <summary>The stop checkpoint committed and the requesters were answered.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Records a requester; true for the first request (forward it to the primary then).</summary>
    public bool Request(IActorRef requester)
    {
        _requesters.Add(requester);
        if (Requested)
            return false;
        Requested = true;
        return true;
    }

    /// <summary>A new primary is asked to stop: the old one's word no longer counts.</summary>
    public void AskAnew() => Epoch = null;

    public void OnEpochClosed(EpochClosed closed)
    {
        if (closed.GuestStopped && Requested)
            Epoch ??= closed.Epoch;
    }

    /// <summary>True when the next epoch should be closed for the stop: asked, not yet stopped at one, every earlier close answered.</summary>
    public bool ShouldClose(CheckpointPipeline? pipeline) =>
        Requested && Epoch is null && pipeline is { CanClose: true } p && (p.InFlight == 0 || p.IsClosedByPrimary(p.LastClosed));

    /// <summary>True when committing <paramref name="epoch"/> completes the stop.</summary>
    public bool CompletedBy(long epoch) => Epoch is { } last && epoch >= last && !Stopped;

    /// <summary>The stop is done: the answer, and who gets it (each requester once).</summary>
    public (GuestStopped Answer, IReadOnlyList<IActorRef> Requesters) Finish(long generation, long lastCommitted)
    {
        Stopped = true;
        // The checkpoint the guest stopped at (any committed after it are empty).
        var answer = new GuestStopped(generation, Epoch ?? lastCommitted);
        var requesters = _requesters.ToList();
        _requesters.Clear();
        return (answer, requesters);
    }
}
