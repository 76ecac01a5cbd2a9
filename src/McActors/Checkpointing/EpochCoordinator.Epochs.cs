using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using McActors.Checkpointing.Policies;
using McActors.Protocol;

namespace McActors.Checkpointing;

// EpochCoordinator: closing epochs (as the policy and a StopGuest decide) and carrying out the
// checkpoint pipeline's decisions (persist, then Commit or LeftReplicaSet).
public sealed partial class EpochCoordinator
{
    // When the last epoch was closed (or the generation started running): a commit that frees a
    // slot closes the next epoch at once if one is due, so neither a full pipeline nor the
    // scheduler's ~10 ms tick granularity delays it.
    private long _lastCloseTicks;
    // What the primary last reported of the epoch it has open (EpochProgress), for the policy.
    private EpochProgress? _openEpoch;

    /// <summary>How often prepare deadlines are checked and lost Prepares resent.</summary>
    private TimeSpan CheckInterval =>
        TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(10).Ticks, Math.Min(_settings.EpochInterval.Ticks, PrepareResendAfter.Ticks)));

    /// <summary>A Prepare unanswered this long is sent again (a lost one must not cost a whole timeout).</summary>
    private TimeSpan PrepareResendAfter => _settings.PrepareTimeout / 4;

    /// <summary>
    /// Asks the checkpoint policy whether to close the open epoch now (never past max-in-flight, nor
    /// once a StopGuest took over the closes), and arms the wait it asks for. <paramref name="armOnly"/>
    /// (as a generation starts running and after each close): only a wait is taken, so that a policy
    /// that always says CloseNow cannot close a burst of empty epochs; the next tick or event closes.
    /// </summary>
    private void ConsultPolicy(bool outputWaiting = false, bool tick = false, bool armOnly = false)
    {
        if (_pipeline is null || _stop.Requested)
            return;
        var since = Stopwatch.GetElapsedTime(_lastCloseTicks);
        var open = _openEpoch is { } o && o.Epoch == _pipeline.LastClosed + 1 ? o : null;
        var view = new CheckpointPolicyView(since, _pipeline.InFlight, open?.Bytes ?? 0, open?.Writes ?? 0, outputWaiting,
            IntervalDue: tick || since >= _settings.EpochInterval);
        switch (_policy.Decide(view))
        {
            case CloseNow when armOnly:
                break;
            case CloseNow when _pipeline.CanClose:
                CloseNextEpoch();
                break;
            case CloseNow when tick:
                _log.Debug("{0} checkpoints in flight: epoch tick skipped (back-pressure)", _pipeline.InFlight);
                break;
            case Wait { Delay: var delay } when delay > TimeSpan.Zero && delay != Timeout.InfiniteTimeSpan:
                Timers.StartSingleTimer(PolicyTick.Instance, PolicyTick.Instance, delay);
                break;
        }
    }

    /// <summary>After a StopGuest: closes the next epoch while <see cref="GuestStop.ShouldClose"/>.</summary>
    private void CloseForStop()
    {
        if (_stop.ShouldClose(_pipeline))
            CloseNextEpoch();
    }

    private void CloseNextEpoch()
    {
        _lastCloseTicks = Stopwatch.GetTimestamp();
        var now = DateTime.UtcNow;
        var epoch = _pipeline!.Close(now);
        _commits.Closed(epoch, Stopwatch.GetTimestamp(), now);
        Primary()?.Tell(new CloseEpoch(_state.Generation, epoch));
        foreach (var secondary in _pipeline.TakingPart(epoch))
            _members.RefOf(secondary)?.Tell(new Prepare(_state.Generation, epoch));
        ConsultPolicy(armOnly: true);
    }

    /// <summary>Resends Prepare of the oldest open checkpoint to the secondaries that still owe it.</summary>
    private void ResendPrepare(DateTime now)
    {
        if (_pipeline is not { InFlight: > 0 })
            return;
        var oldest = _pipeline.LastCommitted + 1;
        if (!_commits.PrepareResendDue(oldest, now, PrepareResendAfter))
            return;
        // A lost CloseEpoch would stall the pipeline for good (a checkpoint the primary never closed
        // has no deadline); a repeated one is answered with EpochClosed again.
        if (!_pipeline.IsClosedByPrimary(oldest))
            Primary()?.Tell(new CloseEpoch(_state.Generation, oldest));
        foreach (var secondary in _pipeline.AwaitingPrepare(oldest))
        {
            _log.Debug("resending Prepare({0}) to {1}", oldest, secondary);
            _members.RefOf(secondary)?.Tell(new Prepare(_state.Generation, oldest));
        }
    }

    /// <summary>Persists the pipeline's decisions, in order, in one batch (one journal write).</summary>
    private void Decide(IReadOnlyList<PipelineDecision> decisions)
    {
        if (decisions.Count == 0)
            return;
        var events = decisions.Select<PipelineDecision, ICoordinatorEvent>(decision => decision switch
        {
            DropSecondary drop => new SecondaryDropped(_state.Generation, drop.Replica, drop.Epoch, drop.Reason),
            CommitCheckpoint commit => CommittedEvent(commit),
            _ => throw new InvalidOperationException($"unknown decision {decision}"),
        }).ToList();
        PersistAll(events, e =>
        {
            if (e is CheckpointCommitted committed)
                OnCommitted(committed);
            else
                OnDropped((SecondaryDropped)e);
        });
    }

    private CheckpointCommitted CommittedEvent(CommitCheckpoint commit)
    {
        var (writes, bytes) = _commits.CountsOf(commit.Epoch);
        return new CheckpointCommitted(_state.Generation, commit.Epoch, writes, bytes, commit.PreparedBy.Count);
    }

    private void PersistDrop(SecondaryDropped dropped) => Persist(dropped, OnDropped);

    private void OnDropped(SecondaryDropped e)
    {
        // Which membership ended (read before the drop forgets it): a late copy must not stop a later one.
        var membership = _state.MembershipOf(e.Replica);
        ApplyEvent(e);
        _log.Warning("secondary {0} dropped from generation {1} at epoch {2}: {3}", e.Replica, e.Generation, e.Epoch, e.Reason);
        _events.Publish(new Events.ReplicaDropped(e.Generation, e.Replica, e.Epoch, e.Reason));
        // Untold, a dropped secondary that still runs keeps taking the stream (and holding the
        // primary's window). A primary not yet running is told nothing: its assignment leaves it out.
        var left = new LeftReplicaSet(e.Generation, e.Replica, e.Reason, membership);
        _members.RefOf(e.Replica)?.Tell(left);
        if (_primaryRunning)
            Primary()?.Tell(left);
    }

    private void OnCommitted(CheckpointCommitted e)
    {
        ApplyEvent(e);
        _events.Publish(new Events.CheckpointCommitted(e.Generation, e.Epoch, _commits.Committed(e.Epoch, Stopwatch.GetTimestamp())));
        // Exactly the secondaries that prepared it count (one that joined after it was opened does not).
        var commit = new Commit(e.Generation, e.Epoch, e.Secondaries);
        Primary()?.Tell(commit);
        foreach (var secondary in _pipeline!.Secondaries)
            _members.RefOf(secondary)?.Tell(commit);

        if (_stop.CompletedBy(e.Epoch))
            Become(GuestStopped);
        else if (_stop.Requested)
            CloseForStop();
        else
            ConsultPolicy(); // an epoch may be due (its tick skipped while the pipeline was full): do not wait for the next tick
    }
}
