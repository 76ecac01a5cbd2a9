using System.Net;
using Akka.Actor;
using Akka.Event;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// A secondary replica of one volume (DESIGN.md, "Secondary"). On <see cref="AssignSecondary"/> it
/// opens its store (a <see cref="RollbackStoreActor"/> child in <c>dataDirectory/store</c>), brings
/// it to the cluster's last committed checkpoint, and listens for the primary's stream on its
/// data-plane endpoint (a <see cref="StreamApplier"/> writes it straight into the store). It then
/// takes part in the two-phase checkpoint (<see cref="SecondaryCheckpointing"/>): Prepare(n) is
/// answered only once marker and guest state n have arrived and image, logs and state file n are
/// durable; Commit(n) drops logs and older state files. Guest states live in <c>dataDirectory/states</c>.
/// <para>
/// States: Unassigned → (AssignSecondary) Opening → (StoreReady) Aligning → (store at the
/// checkpoint) Active. A store that must be resynced, or a broken stream, is reported to the
/// coordinator as <see cref="ReplicaFailed"/> and stops this actor.
/// </para>
/// The bound data-plane port (the endpoint may say port 0) is in <see cref="SecondaryStatus"/>.
/// </summary>
public sealed class SecondaryActor : ReceiveActor, IWithUnboundedStash
{
    public const string StoreName = "store";

    private readonly string _replicaId;
    private readonly string _dataDirectory;
    private readonly IActorRef _coordinator;
    private readonly McActorsSettings _settings;
    private readonly StoreGate _gate = new();
    private readonly GuestStateFiles _states;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly SecondaryDataPlane _dataPlane;
    private readonly SecondaryCheckpointing _checkpointing;
    private readonly RollbackTally _rolledBack = new();

    private AssignSecondary? _assignment;
    private PromoteToPrimary? _promotion;
    private IActorRef _assigner = ActorRefs.Nobody;
    private IActorRef _store = ActorRefs.Nobody;
    private long _generation;
    private Exception? _lastStoreFailure;
    private string _state = "Unassigned";

    public SecondaryActor(string replicaId, string dataDirectory, IPEndPoint dataPlaneEndPoint, IActorRef coordinator, McActorsSettings settings)
    {
        _replicaId = replicaId;
        _dataDirectory = dataDirectory;
        _dataPlane = new SecondaryDataPlane(dataPlaneEndPoint, settings.DataPlane, _log);
        _coordinator = coordinator;
        _settings = settings;
        _states = GuestStateFiles.Of(dataDirectory);
        _checkpointing = new SecondaryCheckpointing(replicaId, _states, coordinator, _log, Fail);
        Unassigned();
    }

    public IStash Stash { get; set; } = null!;

    /// <summary>
    /// Props for a secondary; it blocks on file I/O, so the node runs it on
    /// <see cref="McActorsSettings.ReplicaDispatcher"/> (tests without that configuration pass false).
    /// </summary>
    public static Props Props(string replicaId, string dataDirectory, IPEndPoint dataPlaneEndPoint, IActorRef coordinator,
        McActorsSettings settings, bool onReplicaDispatcher = true)
    {
        var props = Akka.Actor.Props.Create(() => new SecondaryActor(replicaId, dataDirectory, dataPlaneEndPoint, coordinator, settings));
        return onReplicaDispatcher ? props.WithDispatcher(McActorsSettings.ReplicaDispatcher) : props;
    }

    protected override SupervisorStrategy SupervisorStrategy() =>
        StoreSupervision.Strategy(e =>
        {
            _lastStoreFailure = e;
            _log.Warning("rollback store failed ({0}: {1}): {2}", e.GetType().Name, e.Message,
                StoreSupervision.IsResyncRequired(e) ? "stopping it, a resync is required" : "restarting it from disk");
        });

    protected override void PostStop() => _dataPlane.Close();

    /// <summary>Starts the store actor (it opens or creates the store and answers StoreReady), then waits for it.</summary>
    private void OpenStore(VolumeSpec spec, bool resync)
    {
        var volume = new VolumeDescriptor(spec.VolumeId, spec.SizeBytes, spec.BlockSize);
        _store = Context.ActorOf(RollbackStoreActor.Props(Path.Combine(_dataDirectory, StoreName), volume, _gate, _settings.StoreOptions, resync)
            .WithDispatcher(Context.Props.Dispatcher), StoreName);
        Context.Watch(_store);
        _checkpointing.Store = _store;
        Become(Opening);
    }

    private void Unassigned()
    {
        _state = "Unassigned";
        Receive<AssignSecondary>(m =>
        {
            _generation = m.Generation;
            _assignment = m;
            _assigner = Sender;
            if (m.Resync)
                _log.Info("secondary {0}: joining generation {1} by a resync from primary {2}", _replicaId, m.Generation, m.PrimaryId);
            OpenStore(m.Volume, m.Resync);
        });
        Receive<PromoteToPrimary>(m =>
        {
            // A replica with no running role told to be primary: its image is trusted only through
            // its store (recovered from disk, or created for a new volume), brought to the checkpoint.
            _promotion = m;
            _generation = m.Assignment.Generation;
            _assigner = Sender;
            _log.Info("secondary {0}: opening the store to become primary of generation {1} at checkpoint {2}", _replicaId, _generation, m.Assignment.LastCommitted);
            OpenStore(m.Assignment.Volume, resync: false);
        });
        Receive<Prepare>(m => _log.Warning("ignoring Prepare({0}) of generation {1}: no role assigned yet", m.Epoch, m.Generation));
        Receive<Commit>(m => _log.Warning("ignoring Commit({0}) of generation {1}: no role assigned yet", m.Epoch, m.Generation));
        Common();
    }

    /// <summary>Waiting for the store actor to open (create or recover) the store.</summary>
    private void Opening()
    {
        _state = "Opening";
        Receive<StoreReady>(m =>
        {
            OnStoreReady(m);
            if (m.Digest is { } digest)
            {
                // Joining: nothing to align, the primary brings the image in sync.
                Activate(digest);
                return;
            }
            Become(Aligning);
            _store.Tell(GetStoreStatus.Instance);
        });
        Receive<Terminated>(m => m.ActorRef.Equals(_store), _ => StoreLost());
        Receive<GetSecondaryStatus>(_ => ReplyStatus());
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>Bringing the store to the assignment's checkpoint (rollback, commit), step by step until it is there.</summary>
    private void Aligning()
    {
        _state = "Aligning";
        Receive<StoreStatus>(m =>
        {
            var target = Target;
            var newestLogged = m.LoggedEpochs.Count > 0 ? m.LoggedEpochs.Max() : 0;
            _rolledBack.StartAt(m.Prepared, newestLogged);
            var plan = StoreAlignment.Plan(m.Committed, m.Prepared, target, newestLogged);
            if (plan.ResyncReason is { } reason)
            {
                Fail($"store cannot resume from checkpoint {target}, resync required: {reason}");
                return;
            }
            if (plan.Ready)
            {
                if (_promotion is not null)
                    FinishPromotion();
                else
                    Activate();
                return;
            }
            if (plan.RollbackTo is { } checkpoint)
                _store.Tell(new RollbackStoreTo(checkpoint));
            if (plan.CommitTo is { } commit)
                _store.Tell(new CommitStore(commit));
            _store.Tell(GetStoreStatus.Instance);
        });
        Receive<StoreReady>(OnStoreReady);
        Receive<StoreRolledBack>(m => _rolledBack.Add(m.Result));
        Receive<StoreCommitted>(m => _checkpointing.Checkpoints.StoreCommitted(m.Epoch));
        // A prepare of the old generation finishing now is undone by this alignment: never stash it.
        Receive<StorePrepared>(m => _log.Debug("dropping StorePrepared({0}) while aligning", m.Epoch));
        Receive<StoreStatesNotDurable>(m => _log.Debug("dropping StoreStatesNotDurable({0}) while aligning: {1}", m.Epoch, m.Reason));
        Receive<PromoteToPrimary>(BeginPromotion);
        Receive<Terminated>(m => m.ActorRef.Equals(_store), _ => StoreLost());
        Receive<GetSecondaryStatus>(_ => ReplyStatus());
        Receive<SecondaryStreamBroken>(StreamBroken);
        ReceiveAny(_ => Stash.Stash());
    }

    private void Activate(ResyncDigest? joining = null)
    {
        var m = _assignment!;
        try
        {
            _states.DeleteAfter(m.LastCommitted);
        }
        catch (IOException e)
        {
            Fail($"cannot remove the guest states undone by the rollback to checkpoint {m.LastCommitted}: {e.Message}");
            return;
        }
        if (!_dataPlane.IsOpen)
        {
            try
            {
                _dataPlane.Open(_gate, Self, _states, m, joining: joining is not null);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                Fail($"cannot listen for the data plane on {_dataPlane.EndPoint}: {e.Message}");
                return;
            }
        }
        else
        {
            _dataPlane.Reassign(m.Generation);
        }
        _dataPlane.Fence(m.Generation);
        _log.Info("secondary {0} of generation {1} (primary {2}) listening on {3}, store at checkpoint {4} (committed {5})",
            _replicaId, m.Generation, m.PrimaryId, _dataPlane.LocalEndPoint, _checkpointing.Checkpoints.Prepared, _checkpointing.Checkpoints.Committed);
        if (joining is not null)
            _coordinator.Tell(new ResyncReady(m.Generation, _replicaId, joining.ChunkBytes, joining.Hashes, m.ResyncAttempt));
        else
            _assigner.Tell(new RoleAssumed(m.Generation, _replicaId, ReplicaRole.Secondary));
        Become(Active);
        Stash.UnstashAll();
    }

    private void Active()
    {
        _state = "Active";
        Receive<AssignSecondary>(m =>
        {
            if (m.Generation < _generation)
                Sender.Tell(new StaleGeneration(_generation, m.Generation, nameof(AssignSecondary)));
            else if (m.Generation == _generation)
                Sender.Tell(new RoleAssumed(_generation, _replicaId, ReplicaRole.Secondary)); // a resent assignment
            else
            {
                // A failover: follow the new primary from its resume point.
                _generation = m.Generation;
                _assignment = m;
                _assigner = Sender;
                BeginAlignment();
            }
        });
        Receive<PromoteToPrimary>(BeginPromotion);
        Receive<Prepare>(m =>
        {
            if (Current(m.Generation, nameof(Prepare)))
                _checkpointing.Prepare(_generation, m.Epoch);
        });
        Receive<StreamCheckpointReceived>(m =>
        {
            if (m.Generation == _generation)
                _checkpointing.CheckpointReceived(m);
        });
        Receive<StorePrepared>(m => _checkpointing.StorePrepared(_generation, m));
        Receive<StoreStatesNotDurable>(_checkpointing.StatesNotDurable);
        Receive<Commit>(m =>
        {
            if (Current(m.Generation, nameof(Commit)))
                _checkpointing.Commit(m.Epoch);
        });
        Receive<StoreCommitted>(m =>
        {
            _checkpointing.StoreCommitted(m.Epoch);
            _dataPlane.Committed(m.Epoch);
        });
        Receive<StoreReady>(m =>
        {
            OnStoreReady(m);
            _checkpointing.StartPrepare();
        });
        Receive<StoreRolledBack>(_ => { });
        Receive<StreamSyncCompleted>(m =>
        {
            if (m.Generation != _generation)
                return;
            // Before any prepare of that checkpoint: the store refuses to prepare below it until then.
            _log.Info("secondary {0}: resync complete, in sync from checkpoint {1} ({2:0.0} MiB copied)", _replicaId, m.Epoch,
                _dataPlane.CopiedBytes / 1048576.0);
            _store.Tell(new MarkStoreSynced(m.Epoch));
        });
        Receive<StoreSynced>(_ => { });
        Receive<StoreWriteFailed>(m => _store.Tell(new FailStore(m.Cause)));
        Receive<SecondaryStreamBroken>(StreamBroken);
        Receive<Terminated>(m => m.ActorRef.Equals(_store), _ => StoreLost());
        Common();
    }

    /// <summary>The checkpoint the store must be brought to: the assignment's (or promotion's) last committed one.</summary>
    private long Target => _promotion?.Assignment.LastCommitted ?? _assignment!.LastCommitted;

    /// <summary>
    /// A new generation began: fence the old primary off first (its frames must not land after the
    /// rollback), then bring the store to the cluster's last committed checkpoint.
    /// </summary>
    private void BeginAlignment()
    {
        _dataPlane.TryFence(_generation);
        _checkpointing.NewGeneration();
        _rolledBack.Restart();
        Become(Aligning);
        _store.Tell(GetStoreStatus.Instance);
    }

    private void BeginPromotion(PromoteToPrimary m)
    {
        if (m.Assignment.Generation <= _generation && _promotion is null)
        {
            Sender.Tell(new StaleGeneration(_generation, m.Assignment.Generation, nameof(AssignPrimary)));
            return;
        }
        _log.Info("secondary {0}: promoted to primary of generation {1}; rolling back to checkpoint {2}",
            _replicaId, m.Assignment.Generation, m.Assignment.LastCommitted);
        _promotion = m;
        _generation = m.Assignment.Generation;
        _assigner = Sender;
        BeginAlignment();
    }

    /// <summary>The image is the checkpoint: close the store and listener, hand the image over, stop.</summary>
    private void FinishPromotion()
    {
        var promotion = _promotion!;
        var target = promotion.Assignment.LastCommitted;
        if (target > 0 && !File.Exists(_states.PathOf(target)))
        {
            Fail($"no guest state of checkpoint {target} in {_states.Directory}: the guest could not resume from it");
            return;
        }
        try
        {
            _states.DeleteAfter(target);
        }
        catch (IOException e)
        {
            Fail($"cannot remove the guest states undone by the rollback to checkpoint {target}: {e.Message}");
            return;
        }
        _dataPlane.Close();
        Context.Unwatch(_store);
        Context.Stop(_store);
        Become(() =>
        {
            Receive<Terminated>(t => t.ActorRef.Equals(_store), _ =>
            {
                // The store actor closed the store in its PostStop: the image is the primary's now.
                _assigner.Tell(_rolledBack.Ready(promotion.Assignment, target));
                Context.Stop(Self);
            });
            Receive<GetSecondaryStatus>(_ => ReplyStatus());
            ReceiveAny(_ => { });
        });
        Context.Watch(_store);
    }

    private void Common()
    {
        Receive<GetSecondaryStatus>(_ => ReplyStatus());
        Receive<StreamCheckpointReceived>(_ => { });
        Receive<SecondaryStreamBroken>(m => _log.Warning("stream of generation {0} broken: {1}", m.Generation, m.Reason));
    }

    /// <summary>Fencing: a message of an older generation changes nothing and is told so; one of a newer generation waits for its assignment.</summary>
    private bool Current(long generation, string messageType)
    {
        if (generation < _generation)
        {
            Sender.Tell(new StaleGeneration(_generation, generation, messageType));
            return false;
        }
        if (generation > _generation)
        {
            _log.Warning("ignoring {0} of generation {1}: assigned to generation {2} only", messageType, generation, _generation);
            return false;
        }
        return true;
    }

    private void OnStoreReady(StoreReady m) => _checkpointing.StoreReady(m, _generation);

    private void StreamBroken(SecondaryStreamBroken m)
    {
        if (m.Generation == _generation)
            Fail($"stream of generation {m.Generation} broken at epoch {m.Epoch}, resync required: {m.Reason}");
    }

    private void StoreLost()
    {
        var cause = _lastStoreFailure is { } e ? $"{e.GetType().Name}: {e.Message}" : "it stopped";
        Fail($"rollback store stopped, resync required: {cause}");
    }

    private void Fail(string reason)
    {
        _log.Error("secondary {0} failed: {1}", _replicaId, reason);
        _coordinator.Tell(new ReplicaFailed(_generation, _replicaId, reason));
        Context.Stop(Self);
    }

    private void ReplyStatus() => Sender.Tell(new SecondaryStatus(
        _replicaId, _state, _generation, _checkpointing.Checkpoints.Received, _checkpointing.Checkpoints.Prepared, _checkpointing.Checkpoints.Committed,
        _dataPlane.WritesApplied, _dataPlane.BytesApplied, _dataPlane.ConnectedGeneration, _dataPlane.Port));
}
