using Akka.Actor;
using Akka.Event;
using McActors.DataPlane;
using McActors.Protocol;

namespace McActors.Replication;

/// <summary>The primary's streams: one frame to every secondary through <see cref="ReplicaFanOut"/>, the back-pressure wait, and dropping a secondary.</summary>
public sealed partial class PrimaryActor
{
    // ---- Streaming --------------------------------------------------------------------------

    /// <summary>
    /// Sends one frame to every secondary, then runs <paramref name="then"/>. If a window is full,
    /// waits (stashing everything else) until every send completed: that is the back-pressure.
    /// The wait is stacked over the state <paramref name="over"/> it began in, which it returns to.
    /// </summary>
    private void SendToAll(Func<IReplicaStream, ValueTask> send, Action then, string over, string? only = null)
    {
        var sent = _fanOut.Send(send, only);
        foreach (var failure in sent.Failed)
            Drop(failure);
        if (sent.Waiting is null)
        {
            then();
            return;
        }
        var token = ++_sendToken;
        sent.Waiting.PipeTo(Self,
            success: failures => new SendsSettled(token, failures),
            failure: _ => new SendsSettled(token, []));
        // A secondary that cannot take a frame for a prepare timeout is dropped by the coordinator
        // anyway; dropping it here too keeps the guest from waiting on it forever.
        Timers.StartSingleTimer(SendStallTimer, new SendStalled(token), _settings.PrepareTimeout);
        BecomeStacked(() => AwaitingSends(token, then, over));
    }

    private void AwaitingSends(long token, Action then, string over)
    {
        Receive<SendsSettled>(m => m.Token == token, m =>
        {
            Timers.Cancel(SendStallTimer);
            _fanOut.SendsSettled();
            foreach (var failure in m.Failures)
                Drop(failure);
            UnbecomeStacked();
            then();
            Stash.UnstashAll();
        });
        Receive<SendStalled>(m => m.Token == token, _ =>
        {
            // Disposing a stalled sender fails its pending send, which settles the wait.
            foreach (var (id, stream) in _fanOut.Stalled)
                Drop(id, stream, new TimeoutException($"its window stayed full for {_settings.PrepareTimeout.TotalMilliseconds} ms"));
        });
        Receive<SendStalled>(_ => { });
        // A secondary left out while its full window holds sends: disposing it settles the wait.
        Receive<LeftReplicaSet>(LeaveOut);
        Receive<GetPrimaryStatus>(_ => Sender.Tell(Status($"{over}/{nameof(AwaitingSends)}")));
        // StopGuest waits too: during a close it belongs to the next close (see Closing), and the
        // coordinator's last checkpoint is the one after the close under way.
        ReceiveAny(_ => Stash.Stash());
    }

    private void WatchCompletion(string id, IReplicaStream sender) =>
        sender.Completion.ContinueWith(
                t => new SecondaryLost(id, sender, t.Exception?.GetBaseException()),
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)
            .PipeTo(Self);

    /// <summary>The coordinator dropped a secondary from the replica set: stop streaming to it.</summary>
    private void LeaveOut(LeftReplicaSet m)
    {
        if (Ledger.Fence(m.Generation) == FenceVerdict.Stale)
            Sender.Tell(new StaleGeneration(Ledger.Generation, m.Generation, nameof(LeftReplicaSet)));
        if (Ledger.Fence(m.Generation) != FenceVerdict.Current)
            return;
        foreach (var (id, sender) in _fanOut.To(m.Replica))
        {
            if (m.ResyncAttempt is { } attempt && _fanOut.JoinedBy(sender) is { } joinedBy && joinedBy != attempt)
            {
                _log.Info("primary {0}: ignoring LeftReplicaSet of generation {1} for {2}'s resync attempt {3}: its stream is the one of attempt {4}",
                    _replicaId, m.Generation, id, attempt, joinedBy);
                continue;
            }
            Drop(id, sender, new InvalidOperationException($"the coordinator left it out of the replica set ({m.Reason})"));
        }
    }

    private void Drop(StreamFailure failure) => Drop(failure.Id, failure.Stream, failure.Error);

    private void Drop(string id, IReplicaStream stream, Exception error)
    {
        if (!_fanOut.Remove(id, stream))
            return;
        _log.Warning("primary {0}: secondary {1} dropped from the stream of generation {2}: {3}; running degraded with {4} of {5} secondaries",
            _replicaId, id, Ledger.Generation, error.Message, _fanOut.Count, _assignedSecondaries);
    }

    // ---- Internal messages ------------------------------------------------------------------

    private sealed record SecondaryLost(string Id, IReplicaStream Sender, Exception? Error);

    private sealed record SendsSettled(long Token, IReadOnlyList<StreamFailure> Failures);

    private sealed record SendStalled(long Token);

    private const string SendStallTimer = "send-stall";
}
