using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using McActors.Checkpointing.Policies;
using McActors.Configuration;
using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>
/// The persistent singleton that assigns roles, ticks epochs and runs the two-phase commit
/// (DESIGN.md, "Checkpoint"). Decisions are made by pure parts, each unit-tested without actors:
/// <see cref="CheckpointPipeline"/> (2PC), <see cref="ICheckpointPolicy"/> (when to close),
/// <see cref="ReplicaSetPlanner"/> (who is what), <see cref="ReplicaRegistry"/> (membership and
/// restart detection), <see cref="ResyncTracker"/> (re-protection), <see cref="GuestStop"/>,
/// <see cref="FailoverTimeline"/>, <see cref="CommitLatency"/> and <see cref="CoordinatorState"/>
/// (what is persisted); this actor persists, watches, sends and schedules.
/// States: AwaitingReplicas → AssigningRoles → Running, or (recovered with roles) Resuming →
/// Running; then GuestStopped (after StopGuest). Failover (DESIGN.md, "Failover"): when the
/// primary is lost (terminated: its node was downed; failed; or it registers again with no role,
/// having restarted), the secondary that prepared the most becomes the primary of a new
/// generation and the target is the last committed checkpoint; the new roles go through
/// AssigningRoles again (secondaries roll back and listen first, then the new primary rolls back
/// and resumes). With no secondary alive, PrimaryLost: the volume waits for one to come back, or for
/// the primary itself if it kept the checkpoints while alone (PrimaryAloneCheckpoints).
/// After a restart or a singleton move nothing but the journal is known: each member that
/// registers again gets its assignment and Commit(last committed) again (both idempotent), and
/// epochs continue from the last committed one + 1 as soon as the primary is back. The primary
/// answers CloseEpoch(n) for an epoch it already closed with EpochClosed(n) again, and a
/// secondary answers a repeated Prepare(n) with Prepared again, so re-driving them is safe.
/// Fencing of the coordinator itself (<see cref="EpochCoordinator"/>.Fencing.cs): a recovered one
/// first appends CoordinatorTookOver, and one whose node is downed or leaving persists nothing more.
/// The actor is split by concern into partial files: this one (states), .Epochs.cs (checkpoints),
/// .Membership.cs (registration, re-protection, failover) and .Fencing.cs (cluster events, fencing,
/// status); each under ~400 lines, one actor.
/// </summary>
public sealed partial class EpochCoordinator : ReceivePersistentActor, IWithTimers
{
    public const string DefaultPersistenceId = "mcactors-coordinator";

    private readonly McActorsSettings _settings;
    private readonly string _persistenceId;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ReplicaRegistry _members = new();
    private readonly ResyncTracker _resyncs = new();
    private readonly GuestStop _stop = new();
    private readonly FailoverTimeline _failover = new();
    private readonly CommitLatency _commits = new();
    private readonly HashSet<string> _awaitingRoleAssumed = [];
    private readonly ICheckpointPolicy _policy;
    private readonly Events.EventPublisher _events = new(Context.System);
    private bool _primaryRunning;
    private DateTime _assigningSince;
    private DateTime _resumingSince;
    private CoordinatorState _state = CoordinatorState.Empty;
    private CheckpointPipeline? _pipeline;
    private int _eventsSinceSnapshot;

    public EpochCoordinator(McActorsSettings settings, string persistenceId = DefaultPersistenceId)
    {
        _settings = settings;
        _persistenceId = persistenceId;
        _policy = CheckpointPolicies.Create(settings);
        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is CoordinatorState state)
                _state = state;
        });
        Recover<ICoordinatorEvent>(e => _state = _state.Apply(e));
        Recover<RecoveryCompleted>(_ => OnRecovered());
    }

    public static Props Props(McActorsSettings settings, string persistenceId = DefaultPersistenceId) =>
        Akka.Actor.Props.Create(() => new EpochCoordinator(settings, persistenceId));

    public override string PersistenceId => _persistenceId;

    public ITimerScheduler Timers { get; set; } = null!;

    private void OnRecovered()
    {
        // A coordinator started (by its backoff supervisor, or a late singleton) on a node already
        // downed or leaving must not take the journal over from the one the rest of the cluster runs.
        if (SelfGone())
        {
            Fence("its node was downed or is leaving the cluster before it recovered");
            return;
        }
        // Before any decision: take the next sequence number, so that an older incarnation still
        // running (a singleton that moved while its old node had not stopped yet) can append nothing
        // more. Should that one append first, this write is refused: this coordinator stops, and
        // started again by its supervisor it recovers that decision too.
        var incarnation = _state.Incarnation + 1;
        Persist(new CoordinatorTookOver(incarnation, IsCluster ? Cluster.Get(Context.System).SelfAddress.ToString() : null), e =>
        {
            ApplyEvent(e);
            _log.Info("coordinator incarnation {0} took over the journal at sequence number {1}: older incarnations can append nothing more",
                e.Incarnation, LastSequenceNr);
        });
        if (_state.Volume is null)
        {
            var volume = new VolumeSpec(Guid.NewGuid(), _settings.VolumeSize, _settings.BlockSize);
            Persist(new VolumeCreated(volume), e =>
            {
                ApplyEvent(e);
                _log.Info("volume {0} created: {1} B, block {2} B", volume.VolumeId, volume.SizeBytes, volume.BlockSize);
            });
        }
        if (_state.HasRoles)
        {
            _log.Info("recovered generation {0}: primary {1}, secondaries [{2}], last committed {3}; waiting for replicas to re-register",
                _state.Generation, _state.Primary, string.Join(", ", _state.Secondaries), _state.LastCommitted);
            _resumingSince = DateTime.UtcNow;
            Become(Resuming);
        }
        else
        {
            _log.Info("waiting for {0} replicas to register", _settings.Replicas);
            Become(AwaitingReplicas);
        }
    }

    // ---- states ----

    private void AwaitingReplicas()
    {
        Common();
        Command<RegisterReplica>(r =>
        {
            Register(r);
            var roles = ReplicaSetPlanner.PlanInitial([.. _members.Candidates.Values], _settings.Replicas, _state.Generation);
            if (roles is not null)
                Persist(roles with { PrimaryAddress = AddressOf(roles.Primary) }, e =>
                {
                    ApplyEvent(e);
                    _log.Info("generation {0}: primary {1}, secondaries [{2}]", e.Generation, e.Primary, string.Join(", ", e.Secondaries));
                    Become(AssigningRoles);
                });
        });
        Command<Terminated>(t => Forget(t.ActorRef));
        Command<StopGuest>(_ => Stash.Stash());
        IgnoreOtherFenced();
    }

    private void AssigningRoles()
    {
        _awaitingRoleAssumed.Clear();
        _awaitingRoleAssumed.UnionWith(Members());
        _assigningSince = DateTime.UtcNow;
        SendAssignments();
        Timers.StartPeriodicTimer(AssignRetryTick.Instance, AssignRetryTick.Instance, _settings.AssignRetry);

        Common();
        Command<RoleAssumed>(r =>
        {
            if (IsStale(r))
                return;
            if (_awaitingRoleAssumed.Remove(r.ReplicaId))
            {
                _log.Info("{0} runs as {1} of generation {2}", r.ReplicaId, r.Role, r.Generation);
                if (r.Role == ReplicaRole.Secondary)
                    AssignPrimaryIfSecondariesListen();
                else
                {
                    _members.PromotionSucceeded(r.ReplicaId);
                    OnPrimaryResumed();
                }
            }
            StartRunningIfAllAssumed();
        });
        Command<Promoted>(OnPromoted);
        Command<AssignRetryTick>(_ =>
        {
            LeaveOutSlowSecondaries();
            SendAssignments();
        });
        Command<RegisterReplica>(r =>
        {
            Register(r);
            // A member that registers again may have restarted and lost its assignment.
            if (_awaitingRoleAssumed.Contains(r.ReplicaId))
                SendAssignments();
        });
        Command<Terminated>(t => OnMemberGone(Forget(t.ActorRef), "terminated", StartRunningIfAllAssumed));
        Command<ReplicaFailed>(f =>
        {
            if (IsStale(f))
                return;
            if (f.ReplicaId == _state.Primary && _awaitingRoleAssumed.Contains(f.ReplicaId))
            {
                var delay = _members.BackOffPromotion(f.ReplicaId, _settings.FailedPromotionBackoffMin, _settings.FailedPromotionBackoffMax, DateTime.UtcNow);
                _log.Warning("promotion of {0} failed ({1}); it is not promoted from its own store again for {2:0.#} s", f.ReplicaId, f.Reason, delay.TotalSeconds);
            }
            OnMemberGone(f.ReplicaId, $"failed: {f.Reason}", StartRunningIfAllAssumed);
        });
        Command<StopGuest>(_ => Stash.Stash());
        IgnoreOtherFenced();
    }

    private void Resuming()
    {
        Common();
        Timers.StartPeriodicTimer(AssignRetryTick.Instance, AssignRetryTick.Instance, _settings.AssignRetry);
        // The journal says the primary ran: one that registers with no role has restarted (Register fails over).
        _primaryRunning = true;
        Command<RegisterReplica>(r =>
        {
            if (Register(r))
                Rejoin(r.ReplicaId);
            if (r.ReplicaId != _state.Primary || !_state.HasRoles)
                return;
            if (r.Role == ReplicaRole.Primary && r.RoleGeneration == _state.Generation)
                Become(Running); // it runs: go on with its epochs
            else if (r.Role is not null || ReplicaRegistry.IsPromotingToCurrentGeneration(r, _state))
            {
                // Mid role change (a promotion): finish the assignment first.
                _log.Info("primary {0} of generation {1} registered mid role change (running {2}, becoming {3}): finishing its assignment",
                    r.ReplicaId, _state.Generation, r.Role?.ToString() ?? "nothing", r.Assuming?.ToString() ?? "nothing");
                Become(AssigningRoles);
            }
        });
        Command<AssignRetryTick>(_ =>
        {
            var gone = PrimaryNodeGone();
            if (gone || DateTime.UtcNow - _resumingSince > _settings.PrimaryRejoinTimeout)
                StartFailover(gone ? "its node left the cluster while the coordinator moved" : $"it did not register within {_settings.PrimaryRejoinTimeout.TotalSeconds:0.#} s of the coordinator's recovery");
        });
        Command<Terminated>(t => OnMemberGone(Forget(t.ActorRef), "terminated", () => { }));
        Command<ReplicaFailed>(f =>
        {
            if (!IsStale(f))
                OnMemberGone(f.ReplicaId, $"failed: {f.Reason}", () => { });
        });
        Command<StopGuest>(_ => Stash.Stash());
        IgnoreOtherFenced();
    }

    private void Running()
    {
        Timers.Cancel(AssignRetryTick.Instance);
        _pipeline = new CheckpointPipeline(_state.Generation, _state.LastCommitted, _state.Secondaries, _settings.MaxInFlight, _settings.PrepareTimeout, _state.Joined);
        // The epoch-interval clock: the policy is asked at every tick (and on the events that may change its mind).
        Timers.StartPeriodicTimer(EpochTick.Instance, EpochTick.Instance, _settings.EpochInterval);
        _lastCloseTicks = Stopwatch.GetTimestamp();
        Timers.StartPeriodicTimer(CheckTick.Instance, CheckTick.Instance, CheckInterval);
        _log.Info("generation {0} running: epochs from {1}, every {2} ms", _state.Generation, _state.LastCommitted + 1, _settings.EpochInterval.TotalMilliseconds);
        if (_stop.Requested && !_stop.Stopped)
        {
            // A stop was asked of a primary that is gone: ask the new one, with a last checkpoint of its own.
            _stop.AskAnew();
            Timers.Cancel(EpochTick.Instance);
            Primary()?.Tell(StopGuest.Instance, Self);
            CloseForStop();
        }
        ConsultPolicy(armOnly: true);
        Stash.UnstashAll();

        Common();
        Command<EpochTick>(_ => ConsultPolicy(tick: true));
        Command<PolicyTick>(_ => ConsultPolicy());
        Command<Promoted>(OnPromoted);
        // One the pipeline cannot take now is dropped: the primary asks again after the next commit.
        Command<CheckpointNow>(c =>
        {
            if (!IsStale(c))
                ConsultPolicy(outputWaiting: true);
        });
        Command<EpochProgress>(p =>
        {
            if (IsStale(p) || p.Epoch <= _pipeline.LastClosed)
                return;
            _openEpoch = p;
            ConsultPolicy();
        });
        Command<EpochClosed>(c =>
        {
            if (IsStale(c))
                return;
            if (c.Epoch > _pipeline.LastCommitted)
                _commits.Counted(c.Epoch, c.Writes, c.Bytes);
            _stop.OnEpochClosed(c);
            Decide(_pipeline.OnEpochClosed(c));
            CloseForStop();
        });
        Command<Prepared>(p =>
        {
            if (IsStale(p))
                return;
            _members.Prepared(p.Replica, p.Epoch);
            Decide(_pipeline.OnPrepared(p));
        });
        Command<CheckTick>(_ =>
        {
            var now = DateTime.UtcNow;
            // While the primary's node is unreachable its secondaries cannot prepare (the marker may
            // never come): dropping them for it would leave nobody to fail over to.
            if (!_failover.IsUnreachable(_state.PrimaryAddress))
                Decide(_pipeline.OnTick(now));
            ResendPrepare(now);
            foreach (var replica in _resyncs.ForgetStalled(now, _settings.ResyncStallTimeout))
                _log.Warning("resync of {0} made no progress for {1:0} s; forgotten, it is tried again when it registers", replica, _settings.ResyncStallTimeout.TotalSeconds);
        });
        Command<RegisterReplica>(r =>
        {
            if (Register(r))
                Rejoin(r.ReplicaId);
            else if (_state.HasRoles && !_state.IsMember(r.ReplicaId) && !_stop.Requested)
                MaybeStartResync(r);
        });
        ReprotectionCommands();
        Command<Terminated>(t =>
        {
            var gone = Forget(t.ActorRef);
            if (gone is not null && _resyncs.Remove(gone))
                _log.Warning("{0} left while being resynced", gone);
            OnMemberGone(gone, "terminated", () => { });
        });
        Command<ReplicaFailed>(f =>
        {
            if (IsStale(f))
                return;
            if (_resyncs.Remove(f.ReplicaId))
                _log.Warning("{0} failed while being resynced: {1}", f.ReplicaId, f.Reason);
            OnMemberGone(f.ReplicaId, $"failed: {f.Reason}", () => { });
        });
        Command<StopGuest>(_ =>
        {
            if (!_stop.Request(Sender))
                return;
            // No more regular epochs: the next one the primary closes anew is the guest's last.
            Timers.Cancel(EpochTick.Instance);
            Primary()?.Tell(StopGuest.Instance, Self);
            CloseForStop();
        });
        IgnoreOtherFenced();
    }

    private void GuestStopped()
    {
        Timers.CancelAll();
        var (stopped, requesters) = _stop.Finish(_state.Generation, _state.LastCommitted);
        foreach (var requester in requesters)
            requester.Tell(stopped);
        _log.Info("guest stopped; checkpoint {0} covers all its writes", stopped.Epoch);

        Common();
        Command<StopGuest>(_ => Sender.Tell(stopped));
        Command<RegisterReplica>(r => { Register(r); }); // a block: Register's bool is not "handled"
        Command<Terminated>(t => Forget(t.ActorRef));
        IgnoreOtherFenced();
    }

    private void PrimaryLost()
    {
        Timers.CancelAll();
        _pipeline = null;
        _primaryRunning = false; // a primary that registers again is no restart to fail over: it is what the volume waits for
        Common();
        Command<RegisterReplica>(r =>
        {
            Register(r);
            // A secondary of this generation came back (restarted with its store): it can take over.
            if (_state.Secondaries.Contains(r.ReplicaId))
                StartFailover("no primary: a secondary is back");
            // So can the primary itself, if it kept the checkpoints alone (PrimaryAloneCheckpoints).
            else if (r.ReplicaId == _state.Primary && _members.PrimaryCanComeBack(_state, DateTime.UtcNow))
                StartFailover("no primary: the primary is back, its store holds the last committed checkpoint");
        });
        Command<Terminated>(t => Forget(t.ActorRef));
        Command<StopGuest>(_ => _log.Warning("StopGuest from {0} ignored: there is no primary", Sender));
        IgnoreOtherFenced();
    }

    private void ApplyEvent(ICoordinatorEvent e)
    {
        _state = _state.Apply(e);
        if (++_eventsSinceSnapshot < _settings.SnapshotEvery)
            return;
        _eventsSinceSnapshot = 0;
        SaveSnapshot(_state);
    }

    // ---- timer messages (local only) ----

    private sealed record EpochTick
    {
        public static readonly EpochTick Instance = new();
    }

    /// <summary>A <see cref="Wait"/> of the checkpoint policy ran out.</summary>
    private sealed record PolicyTick
    {
        public static readonly PolicyTick Instance = new();
    }

    private sealed record CheckTick
    {
        public static readonly CheckTick Instance = new();
    }

    private sealed record AssignRetryTick
    {
        public static readonly AssignRetryTick Instance = new();
    }
}
