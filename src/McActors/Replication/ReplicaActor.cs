using System.Net;
using Akka.Actor;
using Akka.Event;
using McActors.Configuration;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>Everything a node's replica needs to know about itself.</summary>
public sealed record ReplicaSettings(
    string ReplicaId,
    string DataDirectory,
    string DataPlaneHost,
    int DataPlanePort,
    McActorsSettings Settings,
    Func<IActorRef, Props>? GuestProps = null);

/// <summary>
/// The node's replica (/user/replica): registers with the coordinator (again and again, so that a
/// moved or restarted coordinator finds it), becomes primary or secondary when told, and forwards
/// the checkpoint protocol to that role's actor. If the role's actor stops for good (its
/// supervisor decided the failure is not recoverable in place), the coordinator hears of it.
/// </summary>
public sealed class ReplicaActor : ReceiveActor, IWithTimers
{
    /// <summary>How often registration is repeated: fast until a role arrives, slower after.</summary>
    public static readonly TimeSpan RegisterInterval = TimeSpan.FromSeconds(1);

    private readonly ReplicaSettings _replica;
    private readonly IActorRef _coordinator;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef? _role;
    private ReplicaRole? _roleKind;
    private long _generation;

    public ReplicaActor(ReplicaSettings replica, IActorRef coordinator)
    {
        _replica = replica;
        _coordinator = coordinator;
        Receive<RegisterTick>(_ => Register());
        Receive<ReplicaRegistered>(r => _generation = Math.Max(_generation, r.Generation));
        Receive<AssignPrimary>(a => Assume(ReplicaRole.Primary, a.Generation, a));
        Receive<AssignSecondary>(a => Assume(ReplicaRole.Secondary, a.Generation, a));
        Receive<Terminated>(t => t.ActorRef.Equals(_role), t => RoleStopped());
        // Everything else (CloseEpoch, Prepare, Commit, StopGuest, status queries) is the role's business.
        ReceiveAny(m =>
        {
            if (_role is null)
                _log.Warning("{0} arrived before this replica has a role; dropped", m.GetType().Name);
            else
                _role.Forward(m);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(ReplicaSettings replica, IActorRef coordinator) =>
        Akka.Actor.Props.Create(() => new ReplicaActor(replica, coordinator));

    protected override void PreStart()
    {
        Directory.CreateDirectory(_replica.DataDirectory);
        Register();
        Timers.StartPeriodicTimer(nameof(RegisterTick), RegisterTick.Instance, RegisterInterval);
    }

    // Role actors fail in ways only they understand; here a stopped role is reported, not restarted.
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(_ => Directive.Stop);

    private void Register()
    {
        var volumeId = File.Exists(Path.Combine(_replica.DataDirectory, VolumeDescriptor.FileName))
            ? VolumeDescriptor.Load(_replica.DataDirectory).VolumeId
            : (Guid?)null;
        _coordinator.Tell(new RegisterReplica(_replica.ReplicaId, Self, _replica.DataPlaneHost, _replica.DataPlanePort,
            volumeId, Committed: 0, Prepared: 0));
    }

    private void Assume(ReplicaRole kind, long generation, object assignment)
    {
        if (generation < _generation)
        {
            Sender.Tell(new StaleGeneration(_generation, generation, assignment.GetType().Name));
            return;
        }
        _generation = generation;
        if (_role is not null && _roleKind != kind)
        {
            // Changing role in place is failover work (rollback, re-protection): not done here yet.
            _log.Error("asked to become {0} in generation {1} while {2}; refused", kind, generation, _roleKind);
            return;
        }
        if (_role is null)
        {
            var props = kind == ReplicaRole.Primary
                ? PrimaryActor.Props(_replica.ReplicaId, _replica.DataDirectory, _coordinator, _replica.Settings, _replica.GuestProps, _replica.Settings.GuestSeed)
                : SecondaryActor.Props(_replica.ReplicaId, _replica.DataDirectory,
                    new IPEndPoint(IPAddress.Parse(_replica.DataPlaneHost), _replica.DataPlanePort), _coordinator, _replica.Settings);
            _role = Context.ActorOf(props, kind.ToString().ToLowerInvariant());
            _roleKind = kind;
            Context.Watch(_role);
            _log.Info("replica {0} is {1} of generation {2}", _replica.ReplicaId, kind, generation);
        }
        _role.Forward(assignment);
    }

    private void RoleStopped()
    {
        _log.Error("the {0} actor of replica {1} stopped; reporting the replica as failed", _roleKind, _replica.ReplicaId);
        _coordinator.Tell(new ReplicaFailed(_generation, _replica.ReplicaId, $"{_roleKind} actor stopped"));
        _role = null;
        _roleKind = null;
    }

    private sealed record RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }
}
