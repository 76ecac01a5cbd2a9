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
/// (DESIGN.md, "Checkpoint"). Decisions are made by <see cref="CheckpointPipeline"/>,
/// <see cref="ReplicaSetPlanner"/> and <see cref="CoordinatorState"/>; this actor only persists,
/// watches and sends.
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
/// Fencing of the coordinator itself: a recovered one first appends CoordinatorTookOver (the
/// journal refuses a repeated sequence number, so no older incarnation appends after it), and one
/// whose node is downed or leaving becomes Fenced and persists nothing more.
/// </summary>
public sealed class EpochCoordinator : ReceivePersistentActor, IWithTimers
{
    public const string DefaultPersistenceId = "mcactors-coordinator";

    private readonly McActorsSettings _settings;
    private readonly string _persistenceId;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, ReplicaCandidate> _registered = [];
    // What the store of each replica that last registered with no role vouches for (RegisterReplica.Committed..Prepared).
    private readonly Dictionary<string, (long Oldest, long Newest, Guid? Volume)> _storeVouches = [];
    // A replica whose promotion failed (ReplicaFailed before RoleAssumed) is not promoted back from
    // its own store before RetryAfter: its registrations would repeat the same vouch, and each
    // retry persists a generation (a store whose state file reads fine but whose logs do not).
    private readonly Dictionary<string, (DateTime RetryAfter, TimeSpan Delay)> _failedPromotions = [];
    private readonly Dictionary<string, IActorRef> _refs = [];
    // Each replica's NBD address (host:port) from its last registration, to tell others where the primary serves.
    private readonly Dictionary<string, string> _nbd = [];
    private readonly HashSet<string> _awaitingRoleAssumed = [];
    private readonly Dictionary<long, long> _closedAtTicks = [];
    private readonly Dictionary<long, DateTime> _prepareSentAt = [];
    private readonly Dictionary<long, (long Writes, long Bytes)> _closedCounts = [];
    private readonly LatencyWindow _latency = new();
    private readonly List<IActorRef> _stopRequesters = [];
    private readonly Dictionary<string, long> _preparedBy = [];
    private readonly Dictionary<Address, DateTime> _unreachableAt = [];
    private readonly Dictionary<Address, DateTime> _downedAt = [];
    private FailoverReport? _lastFailover;
    // Replicas being resynced: their last progress, and when it was heard (for the stall timeout).
    private readonly Dictionary<string, (ResyncProgress Progress, DateTime HeardAt)> _resyncs = [];
    // The attempt id of each replica's resync (in every message of it), so that a forgotten attempt's answers change nothing.
    private readonly Dictionary<string, long> _resyncAttempts = [];
    private long _resyncAttemptsStarted;
    private bool _primaryRunning;
    private DateTime _assigningSince;
    private DateTime _resumingSince;
    private CoordinatorState _state = CoordinatorState.Empty;
    private CheckpointPipeline? _pipeline;
    private long _registrations;
    private int _eventsSinceSnapshot;
    private bool _stopRequested;
    private long? _stopEpoch;
    private bool _guestStopped;
    private readonly ICheckpointPolicy _policy;
    private readonly Events.EventPublisher _events = new(Context.System);
    // What the primary last reported of the epoch it has open (EpochProgress), for the policy.
    private EpochProgress? _openEpoch;

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

    /// <summary>How often prepare deadlines are checked and lost Prepares resent.</summary>
    private TimeSpan CheckInterval =>
        TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(10).Ticks, Math.Min(_settings.EpochInterval.Ticks, PrepareResendAfter.Ticks)));

    /// <summary>A Prepare unanswered this long is sent again (a lost one must not cost a whole timeout).</summary>
    private TimeSpan PrepareResendAfter => _settings.PrepareTimeout / 4;

    protected override void PreStart()
    {
        base.PreStart();
        // Failure detection and downing times for the failover timeline (and a moved coordinator's
        // check whether the primary's node is still there).
        if (IsCluster)
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.ReachableMember), typeof(ClusterEvent.MemberDowned),
                typeof(ClusterEvent.MemberExited), typeof(ClusterEvent.MemberRemoved));
    }

    protected override void PostStop()
    {
        if (IsCluster)
            Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    private bool IsCluster => ((ExtendedActorSystem)Context.System).Provider is ClusterActorRefProvider;

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
            var roles = ReplicaSetPlanner.PlanInitial(_registered.Values, _settings.Replicas, _state.Generation);
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
                    _failedPromotions.Remove(r.ReplicaId);
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
                BackOffPromotion(f.ReplicaId, f.Reason);
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
            else if (r.Role is not null || IsPromotingToCurrentGeneration(r))
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
        if (_stopRequested && !_guestStopped)
        {
            // A stop was asked of a primary that is gone: ask the new one, with a last checkpoint of its own.
            _stopEpoch = null;
            Timers.Cancel(EpochTick.Instance);
            Primary()?.Tell(StopGuest.Instance, Self);
            CloseForStop();
        }
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
                _closedCounts[c.Epoch] = (c.Writes, c.Bytes);
            if (c.GuestStopped && _stopRequested)
                _stopEpoch ??= c.Epoch;
            Decide(_pipeline.OnEpochClosed(c));
            CloseForStop();
        });
        Command<Prepared>(p =>
        {
            if (IsStale(p))
                return;
            if (p.Epoch > _preparedBy.GetValueOrDefault(p.Replica))
                _preparedBy[p.Replica] = p.Epoch;
            Decide(_pipeline.OnPrepared(p));
        });
        Command<CheckTick>(_ =>
        {
            var now = DateTime.UtcNow;
            // While the primary's node is unreachable its secondaries cannot prepare (the marker may
            // never come): dropping them for it would leave nobody to fail over to.
            if (!PrimaryUnreachable())
                Decide(_pipeline.OnTick(now));
            ResendPrepare(now);
            ForgetStalledResyncs(now);
        });
        Command<RegisterReplica>(r =>
        {
            if (Register(r))
                Rejoin(r.ReplicaId);
            else if (_state.HasRoles && !_state.IsMember(r.ReplicaId) && !_stopRequested)
                MaybeStartResync(r);
        });
        Command<ResyncReady>(r =>
        {
            if (IsStale(r) || !IsCurrentResync(r.ReplicaId, r.Attempt, nameof(ResyncReady)) || !_registered.TryGetValue(r.ReplicaId, out var joiner))
                return;
            _log.Info("{0} is ready to resync ({1}); the primary copies what differs", r.ReplicaId,
                r.Digest is null ? "empty image: everything written is copied" : $"{r.Digest.Length / 16} chunks of {r.ChunkBytes} B hashed");
            Primary()?.Tell(new AddSecondary(_state.Generation, new SecondaryEndpoint(r.ReplicaId, joiner.Host, joiner.Port), r.ChunkBytes, r.Digest, r.Attempt));
        });
        Command<ResyncStatus>(r =>
        {
            if (IsStale(r) || !IsCurrentResync(r.Progress.Replica, r.Attempt, nameof(ResyncStatus)))
                return;
            _resyncs[r.Progress.Replica] = (r.Progress, DateTime.UtcNow);
            _events.Publish(new Events.ResyncProgress(r.Generation, r.Progress.Replica, r.Progress.ScannedBytes, r.Progress.TotalBytes, r.Progress.CopiedBytes));
        });
        Command<ResyncCompleted>(r =>
        {
            if (IsStale(r) || !IsCurrentResync(r.ReplicaId, r.Attempt, nameof(ResyncCompleted)) || !_resyncs.Remove(r.ReplicaId))
                return;
            _events.Publish(new Events.ResyncCompleted(r.Generation, r.ReplicaId, r.FromEpoch));
            // It takes part in the checkpoints opened from now on: those already open (the primary may
            // not even have closed the one it is in sync from) were never asked of it.
            Persist(new SecondaryAdded(_state.Generation, r.ReplicaId, r.FromEpoch, _pipeline!.JoinEpoch(r.FromEpoch), r.Attempt), e =>
            {
                ApplyEvent(e);
                _pipeline!.AddSecondary(e.Replica, e.CountsFrom);
                _events.Publish(new Events.ReplicaAdded(e.Generation, e.Replica, e.CountsFrom));
                _log.Info("{0} is in sync from checkpoint {1} and protects the volume again from checkpoint {2}: secondaries [{3}]",
                    e.Replica, e.Epoch, e.CountsFrom, string.Join(", ", _state.Secondaries));
            });
        });
        Command<ResyncFailed>(r =>
        {
            if (!IsStale(r) && IsCurrentResync(r.ReplicaId, r.Attempt, nameof(ResyncFailed)) && _resyncs.Remove(r.ReplicaId))
                _log.Warning("resync of {0} failed: {1}; it is tried again when it registers", r.ReplicaId, r.Reason);
        });
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
            _stopRequesters.Add(Sender);
            if (_stopRequested)
                return;
            _stopRequested = true;
            // No more regular epochs: the next one the primary closes anew is the guest's last.
            Timers.Cancel(EpochTick.Instance);
            Primary()?.Tell(StopGuest.Instance, Self);
            CloseForStop();
        });
        IgnoreOtherFenced();
    }

    private void GuestStopped()
    {
        _guestStopped = true;
        Timers.CancelAll();
        // The checkpoint the guest stopped at (any committed after it are empty).
        var stopped = new GuestStopped(_state.Generation, _stopEpoch ?? _state.LastCommitted);
        foreach (var requester in _stopRequesters)
            requester.Tell(stopped);
        _stopRequesters.Clear();
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
            else if (r.ReplicaId == _state.Primary && OldPrimaryCanComeBack())
                StartFailover("no primary: the primary is back, its store holds the last committed checkpoint");
        });
        Command<Terminated>(t => Forget(t.ActorRef));
        Command<StopGuest>(_ => _log.Warning("StopGuest from {0} ignored: there is no primary", Sender));
        IgnoreOtherFenced();
    }

    // ---- handlers shared by every state ----

    private void Common()
    {
        Command<GetCoordinatorStatus>(_ => Sender.Tell(Status()));
        Command<ClusterEvent.UnreachableMember>(e => _unreachableAt.TryAdd(e.Member.Address, DateTime.UtcNow));
        Command<ClusterEvent.ReachableMember>(e => _unreachableAt.Remove(e.Member.Address));
        Command<ClusterEvent.MemberDowned>(e =>
        {
            _downedAt.TryAdd(e.Member.Address, DateTime.UtcNow);
            if (IsSelf(e.Member))
            {
                Fence("its node was downed");
                return;
            }
            // A downed node never comes back, and the generation fences it even while it still runs:
            // fail over now rather than when the node is removed (a second or two later).
            if (_state.HasRoles && _state.PrimaryAddress == e.Member.Address.ToString() && !_guestStopped && _pipeline is not null)
                StartFailover("its node was downed");
        });
        Command<ClusterEvent.MemberExited>(e =>
        {
            if (IsSelf(e.Member))
                Fence("its node is leaving the cluster");
        });
        Command<ClusterEvent.MemberRemoved>(e =>
        {
            if (IsSelf(e.Member))
            {
                Fence("its node was removed from the cluster");
                return;
            }
            _downedAt.TryAdd(e.Member.Address, DateTime.UtcNow);
            // A node removed never becomes reachable again; a new one may come back at its address.
            _unreachableAt.Remove(e.Member.Address);
        });
        Command<ResetCommitLatency>(_ => _latency.Clear());
        Command<CoordinatorSingleton.HandOver>(_ => Context.Stop(Self));
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("snapshot at {0} failed: {1}", f.Metadata.SequenceNr, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("deleting old snapshots failed: {0}", f.Cause.Message));
    }

    // ---- fencing of this coordinator ----

    private bool IsSelf(Member member) => IsCluster && member.Address.Equals(Cluster.Get(Context.System).SelfAddress);

    /// <summary>
    /// True once this node is down or on its way out, as far as the cluster's view says: another
    /// coordinator may be (or soon be) running from the same journal, so this one decides nothing.
    /// </summary>
    private bool SelfGone() =>
        IsCluster && Cluster.Get(Context.System) is var cluster
        && (cluster.IsTerminated || cluster.SelfMember.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed);

    /// <summary>
    /// This coordinator's node was downed or is leaving: from now on it persists nothing and answers
    /// nothing but status (the node stops it soon, or the singleton hands over). A persist already
    /// under way when this is learnt still completes: the journal's own fencing (see
    /// <see cref="CoordinatorTookOver"/>) makes sure that it lands before the next coordinator's
    /// recovery, or is refused.
    /// </summary>
    private void Fence(string reason)
    {
        _log.Warning("coordinator of generation {0} fenced: {1}; it persists no more decisions and waits to be stopped", _state.Generation, reason);
        Timers.CancelAll();
        Become(Fenced);
    }

    private void Fenced()
    {
        Command<GetCoordinatorStatus>(_ => Sender.Tell(Status()));
        Command<CoordinatorSingleton.HandOver>(_ => Context.Stop(Self));
        CommandAny(m => _log.Debug("fenced coordinator: {0} dropped", m.GetType().Name));
    }

    /// <summary>Last in every state: fenced messages not expected there get StaleGeneration if stale, else are dropped.</summary>
    private void IgnoreOtherFenced() =>
        Command<IFencedMessage>(m =>
        {
            if (!IsStale(m))
                _log.Debug("{0} ignored in this state", m.GetType().Name);
        });

    private bool IsStale(IFencedMessage m)
    {
        if (m.Generation == _state.Generation)
            return false;
        if (m.Generation < _state.Generation)
            Sender.Tell(new StaleGeneration(_state.Generation, m.Generation, m.GetType().Name));
        else
            _log.Warning("{0} of generation {1} from {2} ignored: this coordinator is at generation {3}", m.GetType().Name, m.Generation, Sender, _state.Generation);
        return true;
    }

    // ---- registration and membership ----

    /// <summary>
    /// Records, watches and acknowledges a registration (every one: replicas resend until they see
    /// the ack, and keep resending so that a moved coordinator hears from them). True when a
    /// member of the replica set registered from a ref new to this coordinator: after a restart
    /// or move of the coordinator, or of the replica.
    /// </summary>
    private bool Register(RegisterReplica r)
    {
        var known = _refs.TryGetValue(r.ReplicaId, out var old);
        var newRef = !known || !old!.Equals(r.Replica);
        if (known && newRef)
        {
            Context.Unwatch(old!);
            _log.Info("{0} registered again from {1} (was {2})", r.ReplicaId, r.Replica, old);
        }
        _refs[r.ReplicaId] = r.Replica;
        var order = _registered.TryGetValue(r.ReplicaId, out var candidate) ? candidate.RegistrationOrder : ++_registrations;
        _registered[r.ReplicaId] = new ReplicaCandidate(r.ReplicaId, r.DataPlaneHost, r.DataPlanePort, order, UpNumber(r.Replica));
        Context.Watch(r.Replica);
        // Not persisted: every replica says its NBD address again within a registration interval.
        if (r.Nbd is not null)
            _nbd[r.ReplicaId] = r.Nbd;
        else
            _nbd.Remove(r.ReplicaId);
        r.Replica.Tell(new ReplicaRegistered(r.ReplicaId, _state.Generation, _state.Primary,
            _state.Primary is { } primary ? _nbd.GetValueOrDefault(primary) : null));

        if (r.Prepared > _preparedBy.GetValueOrDefault(r.ReplicaId))
            _preparedBy[r.ReplicaId] = r.Prepared;
        if (r.Role is null && r.Prepared > 0)
            _storeVouches[r.ReplicaId] = (r.Committed, r.Prepared, r.VolumeId);
        else
            _storeVouches.Remove(r.ReplicaId);

        if (!_state.HasRoles)
            return false;
        if (r.ReplicaId == _state.Primary && newRef && r.Role is null && _primaryRunning && !IsPromotingToCurrentGeneration(r))
        {
            // The primary restarted: its image holds writes that no checkpoint covers, so it cannot
            // go on from the last committed one. Fail over to a secondary; it rejoins later (resync).
            StartFailover("it restarted (registered again without a role)");
            return false;
        }
        if (!_state.IsMember(r.ReplicaId))
            return false;
        return newRef;
    }

    /// <summary>
    /// The replica runs no role because it is being promoted into this generation's primary (its
    /// store rolls back to the last committed checkpoint): it never ran as this primary, so its
    /// image holds nothing uncovered, and failing it over would make a needless generation whose
    /// primary runs beside it until it hears of that generation.
    /// </summary>
    /// <summary>
    /// The lost primary registered again with no role (it restarted), and its store vouches for the
    /// last committed checkpoint: it kept the checkpoints alone while no secondary did
    /// (PrimaryAloneCheckpoints), so it can be rolled back to that checkpoint and promoted again.
    /// The last resort of a failover: any secondary that can take over goes first.
    /// </summary>
    private bool OldPrimaryCanComeBack() =>
        _state.Primary is { } primary && _refs.ContainsKey(primary) && _storeVouches.TryGetValue(primary, out var v)
        && v.Volume == _state.Volume?.VolumeId && v.Oldest <= _state.LastCommitted && _state.LastCommitted <= v.Newest
        && !(_failedPromotions.TryGetValue(primary, out var failed) && DateTime.UtcNow < failed.RetryAfter);

    /// <summary>A promotion failed: the replica's own store is not tried again for a while, doubling up to the configured maximum.</summary>
    private void BackOffPromotion(string replica, string reason)
    {
        var delay = _failedPromotions.TryGetValue(replica, out var last)
            ? TimeSpan.FromTicks(Math.Min(last.Delay.Ticks * 2, _settings.FailedPromotionBackoffMax.Ticks))
            : _settings.FailedPromotionBackoffMin;
        _failedPromotions[replica] = (DateTime.UtcNow + delay, delay);
        _log.Warning("promotion of {0} failed ({1}); it is not promoted from its own store again for {2:0.#} s", replica, reason, delay.TotalSeconds);
    }

    private bool IsPromotingToCurrentGeneration(RegisterReplica r) =>
        r.Role is null && r.Assuming == ReplicaRole.Primary && r.AssumingGeneration == _state.Generation && r.ReplicaId == _state.Primary;

    /// <summary>
    /// A member came back (new ref): it may have missed its assignment and the last decision, so
    /// repeat both. Both are idempotent: a live replica answers a same-generation assignment with
    /// RoleAssumed and ignores a Commit it already has; a restarted one takes its role back.
    /// </summary>
    private void Rejoin(string replica)
    {
        SendAssignment(replica);
        // With the count recorded at its commit, not today's replica set.
        if (_state.LastCommit() is { } commit)
            _refs[replica].Tell(commit);
    }

    /// <summary>Forgets a terminated ref; returns the replica id it belonged to, if it is still current.</summary>
    private string? Forget(IActorRef terminated)
    {
        var id = _refs.FirstOrDefault(kv => kv.Value.Equals(terminated)).Key;
        if (id is null)
            return null;
        _refs.Remove(id);
        if (!_state.HasRoles)
            _registered.Remove(id);
        return id;
    }

    private void OnMemberGone(string? replica, string reason, Action then)
    {
        if (replica is null || !_state.IsMember(replica))
            return;
        if (replica == _state.Primary)
        {
            StartFailover(reason);
            return;
        }
        _awaitingRoleAssumed.Remove(replica);
        AssignPrimaryIfSecondariesListen(); // the primary may have waited for this secondary
        var epoch = _pipeline?.LastClosed ?? _state.LastCommitted;
        var decisions = _pipeline?.RemoveSecondary(replica) ?? [];
        PersistDrop(new SecondaryDropped(_state.Generation, replica, epoch, reason));
        Decide(decisions);
        then();
    }

    // ---- re-protection ----

    /// <summary>
    /// A replica outside the replica set registered: if the set has room, resync it from the
    /// primary (it may be new, a dropped secondary, or an old primary back with its old image).
    /// </summary>
    private void MaybeStartResync(RegisterReplica r)
    {
        if (_resyncs.ContainsKey(r.ReplicaId) || _state.Volume is null || _state.Primary is null)
            return;
        if (_state.Secondaries.Length + _resyncs.Count >= _settings.Replicas - 1)
        {
            _log.Debug("{0} registered; the replica set of generation {1} is full", r.ReplicaId, _state.Generation);
            return;
        }
        _resyncs[r.ReplicaId] = (new ResyncProgress(r.ReplicaId, 0, _state.Volume.SizeBytes, 0, false), DateTime.UtcNow);
        // Unique across coordinator incarnations too: a moved coordinator must not take an old attempt's answer for its own.
        var attempt = (_state.Incarnation << 32) + ++_resyncAttemptsStarted;
        _resyncAttempts[r.ReplicaId] = attempt;
        _log.Info("{0} joins generation {1}: resyncing it from primary {2}{3}", r.ReplicaId, _state.Generation, _state.Primary,
            r.VolumeId == _state.Volume.VolumeId ? " (it holds an image of this volume: only what differs is copied)" : "");
        r.Replica.Tell(new AssignSecondary(_state.Generation, _state.Volume, _state.Primary, _state.LastCommitted, Resync: true, ResyncAttempt: attempt));
    }

    /// <summary>True when <paramref name="attempt"/> is the resync of <paramref name="replica"/> under way; else logs what is ignored.</summary>
    private bool IsCurrentResync(string replica, long attempt, string messageType)
    {
        if (!_resyncs.ContainsKey(replica))
            return false;
        if (_resyncAttempts.GetValueOrDefault(replica) == attempt)
            return true;
        _log.Warning("{0} of resync attempt {1} of {2} ignored: attempt {3} is the one under way (the other was forgotten)",
            messageType, attempt, replica, _resyncAttempts.GetValueOrDefault(replica));
        return false;
    }

    /// <summary>
    /// A resync that reported nothing for a while (a lost message, a joiner or connection that
    /// hung) is forgotten, so that the replica is tried again at its next registration and does
    /// not hold a place in the replica set forever.
    /// </summary>
    private void ForgetStalledResyncs(DateTime now)
    {
        foreach (var replica in _resyncs.Where(kv => now - kv.Value.HeardAt > _settings.ResyncStallTimeout).Select(kv => kv.Key).ToList())
        {
            _resyncs.Remove(replica);
            _log.Warning("resync of {0} made no progress for {1:0} s; forgotten, it is tried again when it registers", replica, _settings.ResyncStallTimeout.TotalSeconds);
        }
    }

    // ---- failover ----

    /// <summary>
    /// The primary is lost: persist the next generation with the secondary that prepared the most
    /// as primary, and assign the roles (target: the last committed checkpoint). The old primary
    /// is fenced by the generation: nothing it sends is accepted, no data plane admits it.
    /// </summary>
    private void StartFailover(string reason)
    {
        if (SelfGone())
        {
            // The primary's node and this one may have been downed in one decision (a minority side):
            // whichever event came first, a coordinator on its way out must not pick the next primary.
            Fence($"its node is down or leaving (primary {_state.Primary} lost: {reason})");
            return;
        }
        var old = _state.Primary!;
        var oldAddress = _state.PrimaryAddress;
        var roles = ReplicaSetPlanner.PlanFailover(_state.Secondaries, RegisteredMembers(), _preparedBy, _state.Generation, AddressOf,
            _state.LastCommitted, _state.CountsFrom)
            ?? (OldPrimaryCanComeBack()
                ? ReplicaSetPlanner.PlanFailover([old], RegisteredMembers(), _preparedBy, _state.Generation, AddressOf, _state.LastCommitted, _ => 0)
                : null);
        if (roles is null)
        {
            _log.Error("primary {0} of generation {1} lost ({2}) and no secondary is alive to take over: the volume is unavailable " +
                "until a secondary of this generation, or the primary itself, returns with a store that holds checkpoint {3} (the last committed)",
                old, _state.Generation, reason, _state.LastCommitted);
            Become(PrimaryLost);
            return;
        }
        var left = _state.Secondaries.Except(roles.Secondaries).Where(s => s != roles.Primary).ToArray();
        _log.Warning($"primary {old} of generation {_state.Generation} lost ({reason}): failing over to {roles.Primary} as primary of " +
            $"generation {roles.Generation} at checkpoint {_state.LastCommitted}; secondaries [{string.Join(", ", roles.Secondaries)}]" +
            (left.Length > 0 ? $"; left out (not registered, or joined after checkpoint {_state.LastCommitted}): {string.Join(", ", left)}" : ""));
        var detectedAt = oldAddress is not null && _unreachableAt.TryGetValue(Address.Parse(oldAddress), out var u) ? u : (DateTime?)null;
        var downedAt = oldAddress is not null && _downedAt.TryGetValue(Address.Parse(oldAddress), out var d) ? d : (DateTime?)null;
        Timers.CancelAll();
        Persist(roles, e =>
        {
            ApplyEvent(e);
            _lastFailover = new FailoverReport(e.Generation, old, e.Primary, _state.LastCommitted, detectedAt, downedAt ?? DateTime.UtcNow,
                DateTime.UtcNow, null, null, 0, 0, 0, 0);
            ResetCheckpointing();
            _events.Publish(new Events.FailoverStarted(e.Generation, old, e.Primary, _state.LastCommitted, reason));
            Become(AssigningRoles);
        });
    }

    /// <summary>
    /// The new primary's rollback report, for the failover timeline. Handled while running too: it
    /// comes through the proxy while RoleAssumed comes straight back, and may arrive after it.
    /// </summary>
    private void OnPromoted(Promoted p)
    {
        if (IsStale(p) || p.ReplicaId != _state.Primary || _lastFailover is not { } f || f.Generation != p.Generation)
            return;
        _lastFailover = f with
        {
            RolledBackAt = p.At,
            RolledBackEpochs = p.RolledBackEpochs,
            RolledBackBlocks = p.RolledBackBlocks,
            RolledBackBytes = p.RolledBackBytes,
            RollbackMs = p.RollbackMs,
        };
        _log.Info($"failover to generation {p.Generation}: {p.ReplicaId} rolled back {p.RolledBackEpochs} epochs " +
            $"({p.RolledBackBlocks} blocks, {p.RolledBackBytes / 1048576.0:0.0} MiB) to checkpoint {p.Checkpoint} in {p.RollbackMs:0.0} ms");
    }

    /// <summary>A new generation starts its checkpoints afresh from the last committed one.</summary>
    private void ResetCheckpointing()
    {
        _pipeline = null;
        _resyncs.Clear(); // the copies were from the old primary; joiners register again
        _primaryRunning = false;
        _closedAtTicks.Clear();
        _prepareSentAt.Clear();
        _closedCounts.Clear();
        _openEpoch = null;
        // What was prepared past the last committed checkpoint is rolled back everywhere.
        foreach (var replica in _preparedBy.Keys.ToList())
            _preparedBy[replica] = Math.Min(_preparedBy[replica], _state.LastCommitted);
    }

    private void OnPrimaryResumed()
    {
        _primaryRunning = true;
        if (_lastFailover is { ResumedAt: null } f && f.Generation == _state.Generation)
        {
            _lastFailover = f with { ResumedAt = DateTime.UtcNow };
            _events.Publish(new Events.FailoverCompleted(f.Generation, _lastFailover));
            var since = (_lastFailover.ResumedAt!.Value - (f.DetectedAt ?? f.DownedAt ?? f.PromotedAt)).TotalMilliseconds;
            _log.Warning("failover to generation {0} done: {1} resumed the guest after checkpoint {2} ({3:0} ms after the old primary was detected lost)",
                f.Generation, f.ToPrimary, f.TargetCheckpoint, since);
        }
    }

    /// <summary>
    /// A secondary of a new generation that has not assumed its role in time (it hangs, or died
    /// without being noticed yet) is left out, so that the primary can start without it.
    /// </summary>
    private void LeaveOutSlowSecondaries()
    {
        if (DateTime.UtcNow - _assigningSince < _settings.AssignTimeout)
            return;
        foreach (var slow in _state.Secondaries.Where(_awaitingRoleAssumed.Contains).ToList())
        {
            _awaitingRoleAssumed.Remove(slow);
            PersistDrop(new SecondaryDropped(_state.Generation, slow, _state.LastCommitted,
                $"did not assume its role within {_settings.AssignTimeout.TotalSeconds:0.#} s"));
        }
        // After the drops are applied, so that the primary is not told to stream to them.
        DeferAsync(nameof(LeaveOutSlowSecondaries), _ => AssignPrimaryIfSecondariesListen());
    }

    private bool PrimaryUnreachable() =>
        _state.PrimaryAddress is { } address && _unreachableAt.ContainsKey(Address.Parse(address));

    /// <summary>True when the recorded primary's node is known and is not a live member of the cluster.</summary>
    private bool PrimaryNodeGone()
    {
        if (!IsCluster || _state.PrimaryAddress is null)
            return false;
        var address = Address.Parse(_state.PrimaryAddress);
        var member = Cluster.Get(Context.System).State.Members.FirstOrDefault(m => m.Address.Equals(address));
        return member is null || member.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed
               || Cluster.Get(Context.System).State.Unreachable.Contains(member);
    }

    private IReadOnlyDictionary<string, ReplicaCandidate> RegisteredMembers() =>
        _registered.Where(kv => _refs.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>The node address of a registered replica (its own system's address when local).</summary>
    private string? AddressOf(string replica)
    {
        if (!_refs.TryGetValue(replica, out var r))
            return null;
        var address = r.Path.Address.HasLocalScope && IsCluster ? Cluster.Get(Context.System).SelfAddress : r.Path.Address;
        return address.ToString();
    }

    private void StartRunningIfAllAssumed()
    {
        if (_awaitingRoleAssumed.Count == 0)
            Become(Running);
    }

    private IEnumerable<string> Members() => _state.Primary is null ? [] : [_state.Primary, .. _state.Secondaries];

    private IActorRef? Primary() => _state.Primary is not null ? _refs.GetValueOrDefault(_state.Primary) : null;

    /// <summary>
    /// Secondaries first; the primary only once every secondary has assumed its role, because the
    /// primary connects to their data planes at once and a secondary listens only after assuming.
    /// </summary>
    private void SendAssignments()
    {
        foreach (var replica in _state.Secondaries.Where(_awaitingRoleAssumed.Contains))
            SendAssignment(replica);
        AssignPrimaryIfSecondariesListen();
    }

    private void AssignPrimaryIfSecondariesListen()
    {
        if (_state.Primary is not null && _awaitingRoleAssumed.Contains(_state.Primary)
            && !_state.Secondaries.Any(_awaitingRoleAssumed.Contains))
            SendAssignment(_state.Primary);
    }

    private void SendAssignment(string replica)
    {
        if (!_refs.TryGetValue(replica, out var target) || _state.Volume is null || _state.Primary is null)
            return;
        object assignment = replica == _state.Primary
            ? new AssignPrimary(_state.Generation, _state.Volume, ReplicaSetPlanner.Endpoints(_state.Secondaries, _registered), _state.LastCommitted)
            // The membership it holds (a secondary resynced in and then restarted is the member of that attempt).
            : new AssignSecondary(_state.Generation, _state.Volume, _state.Primary, _state.LastCommitted, ResyncAttempt: _state.MembershipOf(replica) ?? 0);
        target.Tell(assignment);
    }

    /// <summary>The member's rank by cluster age (0 = oldest) when its node is a cluster member, for tie-breaking.</summary>
    private int? UpNumber(IActorRef replica)
    {
        if (((ExtendedActorSystem)Context.System).Provider is not ClusterActorRefProvider)
            return null;
        var cluster = Cluster.Get(Context.System);
        var address = replica.Path.Address.HasLocalScope ? cluster.SelfAddress : replica.Path.Address;
        // Member.UpNumber is internal; the rank among Up members by age says the same.
        var byAge = cluster.State.Members.Where(m => m.Status == MemberStatus.Up).OrderBy(m => m, Member.AgeOrdering).ToList();
        var rank = byAge.FindIndex(m => m.Address.Equals(address));
        return rank >= 0 ? rank : null;
    }

    // ---- epochs and the two-phase commit ----

    // When the last epoch was closed: a commit that frees a slot closes the next epoch at once if one
    // is due, so neither a full pipeline nor the scheduler's ~10 ms tick granularity delays it.
    private long _lastCloseTicks;

    /// <summary>
    /// After a StopGuest: closes the next epoch once every earlier close is answered, until the
    /// primary reports the one its guest stopped at. A close the primary had already done (a
    /// coordinator that moved re-drives the checkpoints after the last committed one) or one that
    /// began before the StopGuest reached it does not stop the guest, so the stop epoch is the
    /// primary's word, never the coordinator's guess.
    /// </summary>
    private void CloseForStop()
    {
        if (_stopRequested && _stopEpoch is null && _pipeline is { CanClose: true } pipeline
            && (pipeline.InFlight == 0 || pipeline.IsClosedByPrimary(pipeline.LastClosed)))
            CloseNextEpoch();
    }

    /// <summary>
    /// Asks the checkpoint policy whether to close the open epoch now (never past max-in-flight, nor
    /// once a StopGuest took over the closes), and arms the wait it asks for.
    /// </summary>
    private void ConsultPolicy(bool outputWaiting = false, bool tick = false)
    {
        if (_pipeline is null || _stopRequested)
            return;
        var since = Stopwatch.GetElapsedTime(_lastCloseTicks);
        var open = _openEpoch is { } o && o.Epoch == _pipeline.LastClosed + 1 ? o : null;
        var view = new CheckpointPolicyView(since, _pipeline.InFlight, open?.Bytes ?? 0, open?.Writes ?? 0, outputWaiting,
            IntervalDue: tick || since >= _settings.EpochInterval);
        switch (_policy.Decide(view))
        {
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

    private void CloseNextEpoch()
    {
        _lastCloseTicks = Stopwatch.GetTimestamp();
        var now = DateTime.UtcNow;
        var epoch = _pipeline!.Close(now);
        _closedAtTicks[epoch] = Stopwatch.GetTimestamp();
        _prepareSentAt[epoch] = now;
        Primary()?.Tell(new CloseEpoch(_state.Generation, epoch));
        foreach (var secondary in _pipeline.TakingPart(epoch))
            _refs.GetValueOrDefault(secondary)?.Tell(new Prepare(_state.Generation, epoch));
    }

    /// <summary>Resends Prepare of the oldest open checkpoint to the secondaries that still owe it.</summary>
    private void ResendPrepare(DateTime now)
    {
        if (_pipeline is not { InFlight: > 0 })
            return;
        var oldest = _pipeline.LastCommitted + 1;
        if (_prepareSentAt.TryGetValue(oldest, out var sentAt) && now - sentAt < PrepareResendAfter)
            return;
        _prepareSentAt[oldest] = now;
        // A lost CloseEpoch would stall the pipeline for good (a checkpoint the primary never closed
        // has no deadline); a repeated one is answered with EpochClosed again.
        if (!_pipeline.IsClosedByPrimary(oldest))
            Primary()?.Tell(new CloseEpoch(_state.Generation, oldest));
        foreach (var secondary in _pipeline.AwaitingPrepare(oldest))
        {
            _log.Debug("resending Prepare({0}) to {1}", oldest, secondary);
            _refs.GetValueOrDefault(secondary)?.Tell(new Prepare(_state.Generation, oldest));
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
        var (writes, bytes) = _closedCounts.GetValueOrDefault(commit.Epoch);
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
        _refs.GetValueOrDefault(e.Replica)?.Tell(left);
        if (_primaryRunning)
            Primary()?.Tell(left);
    }

    private void OnCommitted(CheckpointCommitted e)
    {
        ApplyEvent(e);
        _closedCounts.Remove(e.Epoch);
        _prepareSentAt.Remove(e.Epoch);
        TimeSpan? latency = _closedAtTicks.Remove(e.Epoch, out var closedAt) ? Stopwatch.GetElapsedTime(closedAt) : null;
        if (latency is { } measured)
            _latency.Add(measured);
        _events.Publish(new Events.CheckpointCommitted(e.Generation, e.Epoch, latency));
        // Exactly the secondaries that prepared it count (one that joined after it was opened does not).
        var commit = new Commit(e.Generation, e.Epoch, e.Secondaries);
        Primary()?.Tell(commit);
        foreach (var secondary in _pipeline!.Secondaries)
            _refs.GetValueOrDefault(secondary)?.Tell(commit);

        if (_stopEpoch is { } last && e.Epoch >= last && !_guestStopped)
            Become(GuestStopped);
        else if (_stopRequested)
            CloseForStop();
        else
            ConsultPolicy(); // an epoch may be due (its tick skipped while the pipeline was full): do not wait for the next tick
    }

    private void ApplyEvent(ICoordinatorEvent e)
    {
        _state = _state.Apply(e);
        if (++_eventsSinceSnapshot < _settings.SnapshotEvery)
            return;
        _eventsSinceSnapshot = 0;
        SaveSnapshot(_state);
    }

    private CoordinatorStatus Status() => new(
        _state.Generation,
        _state.Primary,
        _state.Secondaries,
        _state.LastCommitted,
        _pipeline?.InFlight ?? 0,
        _state.CheckpointsCommitted,
        _state.WritesCommitted,
        _state.BytesCommitted,
        _latency.Percentile(50),
        _latency.Percentile(99),
        Degraded: _state.HasRoles && _state.Secondaries.Length == 0)
    {
        Failovers = _state.Failovers,
        LastFailover = _lastFailover,
        Resyncing = [.. _resyncs.Values.Select(r => r.Progress)],
        JoinedFrom = _state.Joined.ToDictionary(j => j.Replica, j => j.CountsFrom),
    };

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
