using System.Net;
using Akka.Actor;
using Akka.Event;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// Replica → its secondary: become the primary of <see cref="Assignment"/>'s generation. The
/// secondary stops taking the old stream, rolls its store back to the assignment's last committed
/// checkpoint, closes the store and answers <see cref="PromotionReady"/>, then stops; the replica
/// starts a primary on the same image.
/// </summary>
public sealed record PromoteToPrimary(AssignPrimary Assignment);

/// <summary>
/// Secondary → replica: the image is exactly checkpoint <see cref="Checkpoint"/> and closed; the
/// rollback undid <see cref="RolledBackEpochs"/> epochs (blocks and bytes restored, time taken).
/// </summary>
public sealed record PromotionReady(AssignPrimary Assignment, long Checkpoint, long RolledBackEpochs, long RolledBackBlocks,
    long RolledBackBytes, TimeSpan RollbackTime);

/// <summary>
/// A secondary replica of one volume (DESIGN.md, "Secondary"). On <see cref="AssignSecondary"/> it
/// opens its store (a <see cref="RollbackStoreActor"/> child in <c>dataDirectory/store</c>), brings
/// it to the cluster's last committed checkpoint, and listens for the primary's stream on its
/// data-plane endpoint (a <see cref="StreamApplier"/> writes it straight into the store). It then
/// takes part in the two-phase checkpoint: Prepare(n) is answered only once marker and guest
/// state n have arrived and image, logs and state file n are durable; Commit(n) drops logs and
/// older state files. Guest states live in <c>dataDirectory/states</c>.
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
    private readonly IPEndPoint _endPoint;
    private readonly IActorRef _coordinator;
    private readonly McActorsSettings _settings;
    private readonly StoreGate _gate = new();
    private readonly GuestStateFiles _states;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private AssignSecondary? _assignment;
    private PromoteToPrimary? _promotion;
    private long _rollbackFrom = -1;
    private long _rolledBackBlocks;
    private long _rolledBackBytes;
    private TimeSpan _rollbackTime;
    private IActorRef _assigner = ActorRefs.Nobody;
    private IActorRef _store = ActorRefs.Nobody;
    private long _generation;
    private long _storeIncarnation;
    private SecondaryCheckpoints _checkpoints = new(0, 0);
    private StreamApplier? _applier;
    private DataPlaneListener? _listener;
    private Exception? _lastStoreFailure;

    // The newest checkpoint the applier received in a store incarnation whose StoreReady is still on its way.
    private StreamCheckpointReceived? _aheadOfStore;
    private string _state = "Unassigned";

    public SecondaryActor(string replicaId, string dataDirectory, IPEndPoint dataPlaneEndPoint, IActorRef coordinator, McActorsSettings settings)
    {
        _replicaId = replicaId;
        _dataDirectory = dataDirectory;
        _endPoint = dataPlaneEndPoint;
        _coordinator = coordinator;
        _settings = settings;
        _states = GuestStateFiles.Of(dataDirectory);
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

    protected override void PostStop() => CloseListener();

    private void CloseListener()
    {
        if (_listener is null)
            return;
        // Closes the data-plane endpoint; the primary is told this secondary is shutting down.
        try
        {
            _listener.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException e)
        {
            _log.Warning("closing the data-plane listener failed: {0}", e.InnerException?.Message);
        }
        _listener = null;
    }

    /// <summary>Starts the store actor (it opens or creates the store and answers StoreReady), then waits for it.</summary>
    private void OpenStore(VolumeSpec spec, bool resync)
    {
        var volume = new VolumeDescriptor(spec.VolumeId, spec.SizeBytes, spec.BlockSize);
        _store = Context.ActorOf(RollbackStoreActor.Props(Path.Combine(_dataDirectory, StoreName), volume, _gate, _settings.StoreOptions, resync)
            .WithDispatcher(Context.Props.Dispatcher), StoreName);
        Context.Watch(_store);
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
            if (_rollbackFrom < 0)
                _rollbackFrom = Math.Max(m.Prepared, newestLogged);
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
        Receive<StoreRolledBack>(m =>
        {
            _rolledBackBlocks += m.Result.BlocksRestored;
            _rolledBackBytes += m.Result.BytesRestored;
            _rollbackTime += m.Result.Elapsed;
        });
        Receive<StoreCommitted>(m => _checkpoints.StoreCommitted(m.Epoch));
        // A prepare of the old generation finishing now is undone by this alignment: never stash it.
        Receive<StorePrepared>(m => _log.Debug("dropping StorePrepared({0}) while aligning", m.Epoch));
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
        if (_listener is null)
        {
            _applier = new StreamApplier(_gate, Self, _states, m.Generation, joining: joining is not null);
            try
            {
                _listener = new DataPlaneListener(_endPoint, new DataPlaneVolume(m.Volume.VolumeId, m.Volume.BlockSize), _applier, _settings.DataPlane).Start();
            }
            catch (System.Net.Sockets.SocketException e)
            {
                Fail($"cannot listen for the data plane on {_endPoint}: {e.Message}");
                return;
            }
        }
        else
        {
            _applier!.Reassign(m.Generation);
        }
        // Older primaries are refused from now on (and a connected one is closed).
        _listener.RaiseFenceAsync(m.Generation).Wait(TimeSpan.FromSeconds(10));
        _log.Info("secondary {0} of generation {1} (primary {2}) listening on {3}, store at checkpoint {4} (committed {5})",
            _replicaId, m.Generation, m.PrimaryId, _listener.LocalEndPoint, _checkpoints.Prepared, _checkpoints.Committed);
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
            if (!Current(m.Generation, nameof(Prepare)))
                return;
            if (_checkpoints.Request(m.Epoch))
                _coordinator.Tell(new Prepared(_generation, m.Epoch, _replicaId));
            else
                _log.Debug("prepare of checkpoint {0} waits for its marker and state (received up to {1})", m.Epoch, _checkpoints.Received);
            StartPrepare();
        });
        Receive<StreamCheckpointReceived>(m =>
        {
            if (m.Generation != _generation)
                return;
            if (m.Incarnation > _storeIncarnation)
            {
                // The gate publishes a store before its StoreReady is sent: the applier may adopt the
                // new incarnation and deliver a checkpoint first. Nothing resends it, so it waits for
                // that StoreReady (only the newest: a later incarnation makes an earlier one stale).
                if (_aheadOfStore is not { } held || m.Incarnation > held.Incarnation || (m.Incarnation == held.Incarnation && m.Epoch > held.Epoch))
                    _aheadOfStore = m;
                _log.Debug("holding checkpoint {0} received in store incarnation {1} until its StoreReady: the store is incarnation {2}",
                    m.Epoch, m.Incarnation, _storeIncarnation);
                return;
            }
            if (m.Incarnation < _storeIncarnation)
            {
                // Its writes went to a store since reopened or rolled back: the stream resends them.
                _log.Debug("ignoring checkpoint {0} received in store incarnation {1}: the store is incarnation {2}", m.Epoch, m.Incarnation, _storeIncarnation);
                return;
            }
            _checkpoints.CheckpointReceived(m.Epoch);
            StartPrepare();
        });
        Receive<StorePrepared>(m =>
        {
            if (m.Incarnation != _storeIncarnation)
            {
                // Prepared before a rollback or reopen that undid it: it vouches for nothing now.
                _log.Debug("ignoring StorePrepared({0}) of store incarnation {1}: the store is incarnation {2}", m.Epoch, m.Incarnation, _storeIncarnation);
                return;
            }
            foreach (var epoch in _checkpoints.StorePrepared(m.Epoch))
                _coordinator.Tell(new Prepared(_generation, epoch, _replicaId));
            StartPrepare();
        });
        Receive<Commit>(m =>
        {
            if (!Current(m.Generation, nameof(Commit)))
                return;
            switch (_checkpoints.Commit(m.Epoch))
            {
                case CommitDecision.Apply:
                    _store.Tell(new CommitStore(m.Epoch));
                    break;
                case CommitDecision.AlreadyCommitted:
                    _log.Debug("ignoring Commit({0}): checkpoint {1} is committed here", m.Epoch, _checkpoints.Committed);
                    break;
                case CommitDecision.NotPrepared:
                    _log.Warning("ignoring Commit({0}): only checkpoints up to {1} are prepared here", m.Epoch, _checkpoints.Prepared);
                    break;
            }
        });
        Receive<StoreCommitted>(m =>
        {
            _checkpoints.StoreCommitted(m.Epoch);
            _applier?.Committed(m.Epoch);
            // The committed state stays: it is what a promotion restores.
            try
            {
                _states.DeleteBefore(_checkpoints.Committed);
            }
            catch (IOException e)
            {
                _log.Warning("cannot delete guest states older than checkpoint {0} (retried at the next commit): {1}", _checkpoints.Committed, e.Message);
            }
        });
        Receive<StoreReady>(m =>
        {
            OnStoreReady(m);
            StartPrepare();
        });
        Receive<StoreRolledBack>(_ => { });
        Receive<StreamSyncCompleted>(m =>
        {
            if (m.Generation != _generation)
                return;
            // Before any prepare of that checkpoint: the store refuses to prepare below it until then.
            _log.Info("secondary {0}: resync complete, in sync from checkpoint {1} ({2:0.0} MiB copied)", _replicaId, m.Epoch,
                (_applier?.CopiedBytes ?? 0) / 1048576.0);
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
        RaiseFence(_generation);
        _checkpoints.ClearWaiting(); // requests of the old generation are not this one's
        _aheadOfStore = null;
        _rollbackFrom = -1;
        _rolledBackBlocks = _rolledBackBytes = 0;
        _rollbackTime = TimeSpan.Zero;
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
        CloseListener();
        Context.Unwatch(_store);
        Context.Stop(_store);
        Become(() =>
        {
            Receive<Terminated>(t => t.ActorRef.Equals(_store), _ =>
            {
                // The store actor closed the store in its PostStop: the image is the primary's now.
                _assigner.Tell(new PromotionReady(promotion.Assignment, target, Math.Max(0, _rollbackFrom - target),
                    _rolledBackBlocks, _rolledBackBytes, _rollbackTime));
                Context.Stop(Self);
            });
            Receive<GetSecondaryStatus>(_ => ReplyStatus());
            ReceiveAny(_ => { });
        });
        Context.Watch(_store);
    }

    private void RaiseFence(long generation)
    {
        if (_listener is null)
            return;
        try
        {
            _listener.RaiseFenceAsync(generation).Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException e)
        {
            _log.Warning("raising the data-plane fence to generation {0}: {1}", generation, e.InnerException?.Message);
        }
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

    /// <summary>
    /// Starts the store prepare of the newest requested and received checkpoint. The state files
    /// are made durable first: a checkpoint the store calls prepared always has its state on disk.
    /// </summary>
    private void StartPrepare()
    {
        if (_checkpoints.NextPrepare() is not { } epoch)
            return;
        var from = _checkpoints.Prepared;
        try
        {
            _states.MakeDurable(_states.Epochs().Where(e => e > from && e <= epoch));
        }
        catch (IOException e)
        {
            // Without a durable state the checkpoint cannot be vouched for; never answer Prepared.
            Fail($"guest state of checkpoint {epoch} cannot be made durable, resync required: {e.Message}");
            return;
        }
        _store.Tell(new PrepareStore(epoch, _storeIncarnation));
    }

    private void OnStoreReady(StoreReady m)
    {
        _storeIncarnation = m.Incarnation;
        _checkpoints.Reset(m.Committed, m.Prepared);
        if (_aheadOfStore is not { } held || held.Incarnation > m.Incarnation)
            return;
        _aheadOfStore = null;
        // Received in this very store (its writes are in it): it counts as if it came after StoreReady.
        if (held.Incarnation == m.Incarnation && held.Generation == _generation)
            _checkpoints.CheckpointReceived(held.Epoch);
    }

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
        _replicaId, _state, _generation, _checkpoints.Received, _checkpoints.Prepared, _checkpoints.Committed,
        _applier?.WritesApplied ?? 0, _applier?.BytesApplied ?? 0, _listener?.CurrentGeneration, _listener?.Port ?? 0));
}
