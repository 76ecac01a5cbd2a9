using System.Net;
using Akka.Actor;
using Akka.Event;
using McActors.Configuration;
using McActors.Guests;
using McActors.Protocol;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>Everything a node's replica needs to know about itself.</summary>
public sealed record ReplicaSettings(
    string ReplicaId,
    string DataDirectory,
    string DataPlaneHost,
    int DataPlanePort,
    McActorsSettings Settings,
    Func<GuestContext, Props>? GuestProps = null,
    string? Nbd = null);

/// <summary>
/// Published on the node's event stream whenever the coordinator acknowledges a registration: who is
/// primary and where it serves NBD (null if unknown), for a local NBD server to redirect clients.
/// </summary>
public sealed record PrimaryLocated(string? Primary, string? PrimaryNbd);

/// <summary>
/// The node's replica (/user/replica): registers with the coordinator (again and again, so that a
/// moved or restarted coordinator finds it, saying which role it runs), becomes primary or
/// secondary when told, and forwards the checkpoint protocol to that role's actor. Role changes
/// of a failover happen here: a secondary told to be primary is promoted (its store rolls back to
/// the last committed checkpoint, then a primary starts on the same image); a primary that learns
/// of a newer generation stops at once (fencing itself: its guest pauses for good). If the role's
/// actor stops for good (its supervisor decided the failure is not recoverable in place), the
/// coordinator hears of it.
/// States are receive functions: NoRole → Running (a role's actor runs) → Changing (the old role's
/// actor stops; the next assignment, if any, starts when it has) or Promoting (the secondary rolls
/// its image back; its stop is planned only once the image is ready) → Running or NoRole.
/// </summary>
public sealed class ReplicaActor : ReceiveActor, IWithTimers
{
    /// <summary>How often registration is repeated.</summary>
    public static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(1);

    private readonly ReplicaSettings _replica;
    private readonly IActorRef _coordinator;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef? _role;
    private ReplicaRole? _roleKind;
    private long _generation;
    private Guid? _volumeId;

    // The ResyncAttempt of the AssignSecondary that made the running secondary a member of
    // _generation (0: one the generation began with): a LeftReplicaSet about another membership is late.
    private long _membership;

    public ReplicaActor(ReplicaSettings replica, IActorRef coordinator)
    {
        _replica = replica;
        _coordinator = coordinator;
        Become(NoRole);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(ReplicaSettings replica, IActorRef coordinator) =>
        Akka.Actor.Props.Create(() => new ReplicaActor(replica, coordinator));

    protected override void PreStart()
    {
        Directory.CreateDirectory(_replica.DataDirectory);
        Register(running: null, assuming: null);
        Timers.StartPeriodicTimer(nameof(RegisterTick), RegisterTick.Instance, RegisterInterval);
    }

    // Role actors fail in ways only they understand; here a stopped role is reported, not restarted.
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(_ => Directive.Stop);

    // ---- States -------------------------------------------------------------------------------

    /// <summary>No role's actor: the coordinator assigns one (or a failover asks what this disk vouches for).</summary>
    private void NoRole()
    {
        Receive<RegisterTick>(_ => Register(running: null, assuming: null));
        Receive<ReplicaRegistered>(Located);
        Receive<AssignPrimary>(a => Assume(ReplicaRole.Primary, a.Generation, a));
        Receive<AssignSecondary>(a => Assume(ReplicaRole.Secondary, a.Generation, a));
        Receive<PromotionReady>(ReportPromoted);
        Receive<LeftReplicaSet>(m => m.Replica == _replica.ReplicaId, m => RefuseIfStale(m));
        DropTheRest();
    }

    /// <summary>A role's actor runs: the checkpoint protocol is its business.</summary>
    private void Running()
    {
        Receive<RegisterTick>(_ => Register(running: _roleKind, assuming: null));
        Receive<ReplicaRegistered>(r =>
        {
            Located(r);
            if (r.Generation > _generation && _roleKind == ReplicaRole.Primary)
            {
                // Fencing: a newer generation exists, so this primary was failed over (it was
                // partitioned or paused). Stop its guest now rather than wait to be downed.
                _log.Warning("replica {0}: generation {1} has begun, this primary of generation {2} stops", _replica.ReplicaId, r.Generation, _generation);
                StopRole(next: null);
            }
        });
        Receive<AssignPrimary>(a => Assume(ReplicaRole.Primary, a.Generation, a));
        Receive<AssignSecondary>(a => Assume(ReplicaRole.Secondary, a.Generation, a));
        Receive<PromotionReady>(ReportPromoted);
        Receive<LeftReplicaSet>(m => m.Replica == _replica.ReplicaId, OnLeftReplicaSet);
        Receive<Terminated>(t => t.ActorRef.Equals(_role), _ => RoleFailed());
        // Everything else (CloseEpoch, Prepare, Commit, StopGuest, status queries) is the role's business.
        ReceiveAny(m => _role!.Forward(m));
    }

    /// <summary>
    /// The old role's actor is stopping; <paramref name="next"/> (null: none, the role stopped for
    /// fencing) starts once it has stopped: the newest assignment that arrived meanwhile.
    /// </summary>
    private void Changing((object Assignment, IActorRef Sender)? next)
    {
        Receive<RegisterTick>(_ => Register(running: null, assuming: next?.Assignment));
        Receive<ReplicaRegistered>(Located);
        Receive<AssignPrimary>(a => WhileChanging(next, a.Generation, a));
        Receive<AssignSecondary>(a => WhileChanging(next, a.Generation, a));
        Receive<PromotionReady>(ReportPromoted);
        Receive<LeftReplicaSet>(m => m.Replica == _replica.ReplicaId, m => RefuseIfStale(m));
        Receive<Terminated>(t => t.ActorRef.Equals(_role), _ => RoleChanged(next));
        DropTheRest();
    }

    /// <summary>
    /// The secondary rolls its image back for <paramref name="assignment"/>; once it is
    /// <paramref name="ready"/> it hands the image over by stopping, and the primary starts.
    /// Assignments meanwhile are dropped: the coordinator resends until RoleAssumed.
    /// </summary>
    private void Promoting(AssignPrimary assignment, IActorRef sender, bool ready)
    {
        Receive<RegisterTick>(_ => Register(running: null, assuming: assignment));
        Receive<ReplicaRegistered>(Located);
        Receive<AssignPrimary>(a => RefuseIfStale(a.Generation, a));
        Receive<AssignSecondary>(a => RefuseIfStale(a.Generation, a));
        Receive<PromotionReady>(m =>
        {
            ReportPromoted(m);
            Become(() => Promoting(assignment, sender, ready: true));
        });
        Receive<LeftReplicaSet>(m => m.Replica == _replica.ReplicaId, m => RefuseIfStale(m));
        Receive<Terminated>(t => t.ActorRef.Equals(_role), _ =>
        {
            if (ready)
                RoleChanged((assignment, sender));
            else
                RoleFailed();
        });
        DropTheRest();
    }

    private void DropTheRest() =>
        ReceiveAny(m => _log.Warning("{0} arrived while this replica has no running role; dropped", m.GetType().Name));

    // ---- Registration -------------------------------------------------------------------------

    /// <param name="running">The role running (null mid change or with none).</param>
    /// <param name="assuming">Mid role change, the assignment being taken: the coordinator must tell "changing into" from "restarted with no role".</param>
    private void Register(ReplicaRole? running, object? assuming)
    {
        _volumeId ??= ReadVolumeId();
        var into = assuming switch { AssignPrimary => ReplicaRole.Primary, AssignSecondary => ReplicaRole.Secondary, _ => (ReplicaRole?)null };
        // With no role running no store is open: what its state file vouches for is what a failover
        // may ask of this replica (a primary that crashed alone, say). A running role's store is its own business.
        var vouches = _role is null ? RollbackStore.ReadCheckpoints(Path.Combine(_replica.DataDirectory, SecondaryActor.StoreName)) : null;
        _coordinator.Tell(new RegisterReplica(_replica.ReplicaId, Self, _replica.DataPlaneHost, _replica.DataPlanePort,
            _volumeId, Committed: vouches?.Oldest ?? 0, Prepared: vouches?.Newest ?? 0, running, running is null ? 0 : _generation, _replica.Nbd,
            into, into is null ? 0 : GenerationOf(assuming!)));
    }

    /// <summary>The volume this node holds an image of (both roles keep it in the store directory), if any.</summary>
    private Guid? ReadVolumeId()
    {
        var directory = Path.Combine(_replica.DataDirectory, SecondaryActor.StoreName);
        try
        {
            return File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)) ? VolumeDescriptor.Load(directory).VolumeId : null;
        }
        catch (Exception e) when (e is IOException or Storage.CannotVouchException)
        {
            _log.Warning("cannot read the volume descriptor in {0}: {1}", directory, e.Message);
            return null;
        }
    }

    private void Located(ReplicaRegistered r) => Context.System.EventStream.Publish(new PrimaryLocated(r.Primary, r.PrimaryNbd));

    // ---- Membership and role changes -----------------------------------------------------------

    /// <summary>An older generation's message is answered with StaleGeneration; true if it was.</summary>
    private bool RefuseIfStale(long generation, object message)
    {
        if (generation >= _generation)
            return false;
        Sender.Tell(new StaleGeneration(_generation, generation, message.GetType().Name));
        return true;
    }

    private void RefuseIfStale(LeftReplicaSet m) => RefuseIfStale(m.Generation, m);

    /// <summary>
    /// The coordinator dropped this secondary: stop taking the stream (a planned stop, not a
    /// failure); registering with no role, it is resynced when the replica set has room.
    /// </summary>
    private void OnLeftReplicaSet(LeftReplicaSet m)
    {
        if (RefuseIfStale(m.Generation, m) || m.Generation != _generation || _roleKind != ReplicaRole.Secondary)
            return;
        if (m.ResyncAttempt is { } attempt && attempt != _membership)
        {
            // Sent about an earlier membership (e.g. by a coordinator incarnation since replaced); this
            // secondary was resynced back into the generation since and is not the one dropped.
            _log.Info("replica {0}: ignoring LeftReplicaSet of generation {1} for resync attempt {2}: this secondary is the member of attempt {3}",
                _replica.ReplicaId, m.Generation, attempt, _membership);
            return;
        }
        _log.Warning("replica {0}: dropped from the replica set of generation {1} ({2}); stopping its secondary until it is resynced",
            _replica.ReplicaId, m.Generation, m.Reason);
        StopRole(next: null);
    }

    /// <summary>A role change is under way; the newest assignment is the one to take when it ends.</summary>
    private void WhileChanging((object Assignment, IActorRef Sender)? next, long generation, object assignment)
    {
        if (RefuseIfStale(generation, assignment))
            return;
        if (next is null || generation >= GenerationOf(next.Value.Assignment))
        {
            var sender = Sender;
            Become(() => Changing((assignment, sender)));
        }
    }

    /// <summary>An assignment with no role change under way (NoRole or Running).</summary>
    private void Assume(ReplicaRole kind, long generation, object assignment)
    {
        if (RefuseIfStale(generation, assignment))
            return;
        var newer = generation > _generation;
        _generation = generation;
        if (assignment is AssignSecondary { Resync: true } && _role is not null)
        {
            // Every resync attempt starts from a fresh secondary whose store opens for the resync
            // (the coordinator sends one assignment per attempt; a previous attempt may have failed).
            _log.Info("replica {0}: resync into generation {1}; restarting its {2} role first", _replica.ReplicaId, generation, _roleKind);
            StopRole((assignment, Sender));
            return;
        }
        if (_role is not null && _roleKind != kind)
        {
            if (kind == ReplicaRole.Primary)
                BeginPromotion((AssignPrimary)assignment);
            else
            {
                _log.Warning("replica {0}: primary of an older generation told to be a secondary of generation {1}; stopping the primary first",
                    _replica.ReplicaId, generation);
                StopRole((assignment, Sender));
            }
            return;
        }
        if (_role is null && kind == ReplicaRole.Primary)
        {
            // Never a primary straight on an image: a secondary opens the store (recovering it, or
            // creating it for a new volume), rolls it to the checkpoint, then hands it over.
            StartRole(ReplicaRole.Secondary, generation);
            BeginPromotion((AssignPrimary)assignment);
            return;
        }
        var started = _role is null;
        if (started)
            StartRole(kind, generation);
        // A resent assignment of the running membership changes nothing; a new role, resync or generation begins one.
        if (assignment is AssignSecondary secondary && (started || newer || secondary.Resync))
            _membership = secondary.ResyncAttempt;
        _role!.Forward(assignment);
    }

    private void BeginPromotion(AssignPrimary assignment)
    {
        _log.Info("replica {0}: promotion to primary of generation {1}", _replica.ReplicaId, assignment.Generation);
        var sender = Sender;
        Become(() => Promoting(assignment, sender, ready: false));
        _role!.Tell(new PromoteToPrimary(assignment));
    }

    /// <summary>Starts the role's actor and enters Running.</summary>
    private void StartRole(ReplicaRole kind, long generation)
    {
        var props = kind == ReplicaRole.Primary
            ? PrimaryActor.Props(_replica.ReplicaId, _replica.DataDirectory, _coordinator, _replica.Settings, _replica.GuestProps)
            : SecondaryActor.Props(_replica.ReplicaId, _replica.DataDirectory,
                new IPEndPoint(IPAddress.Parse(_replica.DataPlaneHost), _replica.DataPlanePort), _coordinator, _replica.Settings);
        // Names carry the generation: the previous role's actor may still be stopping.
        _role = Context.ActorOf(props, $"{kind.ToString().ToLowerInvariant()}-{generation}");
        _roleKind = kind;
        Context.Watch(_role);
        _log.Info("replica {0} is {1} of generation {2}", _replica.ReplicaId, kind, generation);
        Become(Running);
    }

    private void StopRole((object Assignment, IActorRef Sender)? next)
    {
        Become(() => Changing(next));
        Context.Stop(_role!);
    }

    private void ReportPromoted(PromotionReady m)
    {
        _log.Info("replica {0}: image at checkpoint {1} after rolling back {2} epochs ({3} blocks, {4} B) in {5:0.0} ms; starting the primary",
            _replica.ReplicaId, m.Checkpoint, m.RolledBackEpochs, m.RolledBackBlocks, m.RolledBackBytes, m.RollbackTime.TotalMilliseconds);
        _coordinator.Tell(new Promoted(m.Assignment.Generation, _replica.ReplicaId, m.Checkpoint, m.RolledBackEpochs,
            m.RolledBackBlocks, m.RolledBackBytes, m.RollbackTime.TotalMilliseconds, DateTime.UtcNow));
    }

    /// <summary>The role's actor stopped unasked (or mid promotion before the image was ready): the replica failed.</summary>
    private void RoleFailed()
    {
        _log.Error("the {0} actor of replica {1} stopped; reporting the replica as failed", _roleKind, _replica.ReplicaId);
        _coordinator.Tell(new ReplicaFailed(_generation, _replica.ReplicaId, $"{_roleKind} actor stopped"));
        _role = null;
        _roleKind = null;
        Become(NoRole);
    }

    /// <summary>
    /// A planned role change: the old role's actor is gone, start the new one (none after fencing:
    /// the coordinator assigns a role again when it has one).
    /// </summary>
    private void RoleChanged((object Assignment, IActorRef Sender)? next)
    {
        _role = null;
        _roleKind = null;
        if (next is not { } n)
        {
            Become(NoRole);
            return;
        }
        StartRole(n.Assignment is AssignPrimary ? ReplicaRole.Primary : ReplicaRole.Secondary, GenerationOf(n.Assignment));
        if (n.Assignment is AssignSecondary secondary)
            _membership = secondary.ResyncAttempt;
        _role!.Tell(n.Assignment, n.Sender);
    }

    private static long GenerationOf(object assignment) => assignment switch
    {
        AssignPrimary p => p.Generation,
        AssignSecondary s => s.Generation,
        _ => 0,
    };

    private sealed record RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }
}
