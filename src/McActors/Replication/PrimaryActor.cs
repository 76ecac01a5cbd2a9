using Akka.Actor;
using Akka.Event;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Protocol;
using McActors.Storage;
using McActors.Storage.Volume;

namespace McActors.Replication;

// The primary's own protocol (the coordinator's is in Protocol/; the guest's in Guests/GuestProtocol.cs).

/// <summary>Anyone → primary: answer with <see cref="PrimaryStatus"/>.</summary>
public sealed record GetPrimaryStatus : IControlMessage
{
    public static readonly GetPrimaryStatus Instance = new();
}

/// <summary>
/// The primary's view. <see cref="Writes"/>/<see cref="Bytes"/> count writes applied since the role
/// began; <see cref="Degraded"/> is true while no secondary, or fewer than were assigned, receives the stream;
/// <see cref="OutstandingBytes"/> is each connected secondary's unacknowledged window.
/// </summary>
public sealed record PrimaryStatus(
    long Generation,
    long Epoch,
    long Writes,
    long Bytes,
    long LastClosed,
    long LastCommitted,
    IReadOnlyList<string> ConnectedSecondaries,
    bool Degraded,
    IReadOnlyDictionary<string, long> OutstandingBytes,
    string State,
    bool GuestStopped,
    string? GuestFailure) : IControlMessage;

/// <summary>
/// Front-end → primary: send <see cref="Output"/> back once the checkpoint covering every write
/// applied before this message has committed (an NBD write or FLUSH reply, DESIGN.md invariant 3).
/// </summary>
public sealed record ReleaseWhenCommitted(object Output);

/// <summary>
/// The primary replica (DESIGN.md, "Primary"): owns the live image and the guest, applies the
/// guest's writes and streams them to every secondary tagged (generation, epoch, sequence), closes
/// epochs on the coordinator's CloseEpoch (pause, marker, guest state, resume), and holds external
/// output until its checkpoint commits. The guest's "disk" is this actor.
/// States are receive functions, each entered through one method that does its entry work
/// (BecomeRunning unstashes, BecomeClosing pauses the guest): Unassigned → (AssignPrimary)
/// Connecting → Running ⇄ Closing, Running ⇄ Joining, with AwaitingSends stacked over Running or
/// Closing while a full window holds a stream frame (back-pressure: the guest's write, or the
/// close, completes only when every secondary took the frame). The status names the state whose
/// receive function answers it ("Running", "Closing/AwaitingSends", ...). Epoch bookkeeping lives
/// in <see cref="PrimaryEpochLedger"/>, output holding in <see cref="PrimaryOutputGate"/>, the
/// streams in <see cref="ReplicaFanOut"/>, the resync copy in <see cref="ResyncCopy"/>.
/// </summary>
public sealed class PrimaryActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private readonly string _replicaId;
    private readonly string _directory;
    private readonly IActorRef _coordinator;
    private readonly McActorsSettings _settings;
    private readonly Func<GuestContext, Props> _guestProps;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly IReplicaStreamConnector _connector;
    private readonly ReplicaFanOut _fanOut = new();
    private PrimaryEpochLedger? _ledger;
    private PrimaryOutputGate? _gate;
    private VolumeImage? _image;
    private PrimaryAloneCheckpoints? _alone; // while no secondary holds the checkpoints
    private bool _lastCommitOnNoSecondary;
    private bool _imageSyncing;
    private VolumeSpec? _volume;
    private IActorRef? _guest;
    private IActorRef _assignedBy = ActorRefs.Nobody;
    private int _assignedSecondaries;
    private int _pendingConnects;

    private long _sendToken;

    private long _closing;
    private long _checkpointAskedFor; // the open epoch a CheckpointNow was last sent for
    private bool _capturing;
    private IActorRef _closeRequester = ActorRefs.Nobody;

    private ResyncCopy? _copy;

    private bool _stopGuest;
    private long? _stoppedAt;
    private bool _stoppedStateSaved;
    private bool _outputWaitLogged; // the degraded-output warning is logged once per spell, not per commit
    private string? _guestFailure;

    public PrimaryActor(string replicaId, string dataDirectory, IActorRef coordinator, McActorsSettings settings,
        Func<GuestContext, Props>? guestProps = null, IReplicaStreamConnector? streams = null)
    {
        _connector = streams ?? TcpReplicaStreamConnector.Instance;
        _replicaId = replicaId;
        _directory = dataDirectory;
        _coordinator = coordinator;
        _settings = settings;
        _guestProps = guestProps ?? SyntheticGuestActor.Props;
        Become(Unassigned);
    }

    public IStash Stash { get; set; } = null!;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>
    /// A primary for <paramref name="replicaId"/> keeping its files in <paramref name="dataDirectory"/>,
    /// on the replica dispatcher (it does blocking file I/O). <paramref name="guestProps"/> builds
    /// the guest given its <see cref="GuestContext"/> (this actor is its disk); by default the
    /// built-in synthetic guest, sized to the assigned volume, with the settings' guest seed.
    /// <paramref name="streams"/> opens the streams to the secondaries: TCP data-plane connections by default.
    /// </summary>
    public static Props Props(string replicaId, string dataDirectory, IActorRef coordinator, McActorsSettings settings,
        Func<GuestContext, Props>? guestProps = null, IReplicaStreamConnector? streams = null) =>
        Akka.Actor.Props.Create(() => new PrimaryActor(replicaId, dataDirectory, coordinator, settings, guestProps, streams))
            .WithDispatcher(McActorsSettings.ReplicaDispatcher);

    private PrimaryEpochLedger Ledger => _ledger ?? throw new InvalidOperationException("no role assigned yet");

    /// <summary>Who answers go to: the asker, or the coordinator when the asker cannot be answered (Tell without a sender).</summary>
    private IActorRef ReplyTarget => Sender.IsNobody() || Sender.Equals(Context.System.DeadLetters) ? _coordinator : Sender;

    // ---- Unassigned / Connecting ------------------------------------------------------------

    private void Unassigned()
    {
        Receive<AssignPrimary>(Assign);
        Receive<GetPrimaryStatus>(_ => Sender.Tell(Status(nameof(Unassigned))));
        ReceiveAny(m => _log.Warning("primary {0} has no role yet: ignoring {1}", _replicaId, m.GetType().Name));
    }

    private void Assign(AssignPrimary m)
    {
        _ledger = new PrimaryEpochLedger(m.Generation, m.LastCommitted);
        _gate = new PrimaryOutputGate(m.LastCommitted);
        _volume = m.Volume;
        _assignedBy = ReplyTarget;
        _image = PrimaryVolumeFiles.OpenOrCreate(_directory, m.Volume, _settings.StoreFaults);
        _assignedSecondaries = m.Secondaries.Count;
        _pendingConnects = m.Secondaries.Count;
        _log.Info("primary {0}: generation {1}, volume {2} ({3} B), resuming after checkpoint {4}, connecting to {5} secondaries",
            _replicaId, m.Generation, m.Volume.VolumeId, m.Volume.SizeBytes, m.LastCommitted, m.Secondaries.Count);
        var dataPlaneVolume = new DataPlaneVolume(m.Volume.VolumeId, m.Volume.BlockSize);
        // Every secondary must be connected (or given up) before the guest runs: a stream starts at
        // sequence 1 and carries every frame, so none may be sent before a connection exists.
        foreach (var endpoint in m.Secondaries)
        {
            _connector.ConnectAsync(endpoint.Host, endpoint.Port, dataPlaneVolume, m.Generation, firstSequence: 1, _settings.DataPlane)
                .PipeTo(Self,
                    success: sender => new SecondaryConnected(endpoint, sender),
                    failure: e => new SecondaryConnectFailed(endpoint, e is AggregateException a ? a.GetBaseException() : e));
        }
        Become(Connecting);
        if (_pendingConnects == 0)
            StartGuest();
    }

    private void Connecting()
    {
        Receive<SecondaryConnected>(m =>
        {
            _fanOut.Add(m.Endpoint.ReplicaId, m.Sender);
            WatchCompletion(m.Endpoint.ReplicaId, m.Sender);
            _log.Info("primary {0}: streaming to secondary {1} at {2}:{3}", _replicaId, m.Endpoint.ReplicaId, m.Endpoint.Host, m.Endpoint.Port);
            ConnectSettled();
        });
        Receive<SecondaryConnectFailed>(m =>
        {
            // The coordinator is told nothing: its prepare timeout drops a secondary that never prepares.
            _log.Error(m.Error, "primary {0}: cannot connect to secondary {1} at {2}:{3}; leaving it out of the stream",
                _replicaId, m.Endpoint.ReplicaId, m.Endpoint.Host, m.Endpoint.Port);
            ConnectSettled();
        });
        Receive<GetPrimaryStatus>(_ => Sender.Tell(Status(nameof(Connecting))));
        ReceiveAny(_ => Stash.Stash());
    }

    private void ConnectSettled()
    {
        if (--_pendingConnects == 0)
            StartGuest();
    }

    private void StartGuest()
    {
        _guest = Context.ActorOf(_guestProps(new GuestContext(Self, _volume!, _replicaId, _directory, _settings)), "guest");
        Context.Watch(_guest);
        var ledger = Ledger;
        if (ledger.LastCommitted > 0)
        {
            // After a failover the guest continues from checkpoint c's state, handed over in states/.
            var state = PrimaryVolumeFiles.LoadState(_directory, ledger.LastCommitted);
            if (state is not null)
                _guest.Tell(new RestoreGuestState(ledger.LastCommitted, state));
            else
                _log.Warning("primary {0}: no guest state for checkpoint {1} in {2}; the guest starts afresh",
                    _replicaId, ledger.LastCommitted, PrimaryVolumeFiles.StatePath(_directory, ledger.LastCommitted));
        }
        _guest.Tell(new ResumeGuest(ledger.Epoch));
        Timers.StartPeriodicTimer(ImageSyncTimer, SyncImage.Instance, _settings.ImageSyncInterval);
        if (_fanOut.Count == 0 || _fanOut.Count < _assignedSecondaries)
            _log.Warning("primary {0} runs degraded: {1} of {2} secondaries connected", _replicaId, _fanOut.Count, _assignedSecondaries);
        _assignedBy.Tell(new RoleAssumed(ledger.Generation, _replicaId, ReplicaRole.Primary));
        BecomeRunning();
    }

    /// <summary>Entry to Running: what waited for the guest, a close or a connect comes in now.</summary>
    private void BecomeRunning()
    {
        Become(Running);
        Stash.UnstashAll();
    }

    // ---- Running ----------------------------------------------------------------------------

    private void Running()
    {
        Receive<GuestWrite>(m => Write(m, nameof(Running)));
        Receive<CloseEpoch>(BeginClose);
        Receive<AddSecondary>(BeginJoin);
        Receive<CopyNext>(_ => CopyStep());
        CommonWhileAssigned(nameof(Running));
        Receive<GuestPaused>(m => _log.Debug("primary {0}: late GuestPaused({1}) ignored", _replicaId, m.Epoch));
        Receive<GuestStateCaptured>(m => _log.Debug("primary {0}: late GuestStateCaptured({1}) ignored", _replicaId, m.Epoch));
    }

    /// <summary>What Running and Closing (named <paramref name="state"/> in the status) both handle.</summary>
    private void CommonWhileAssigned(string state)
    {
        Receive<Commit>(OnCommit);
        Receive<SyncImage>(_ => BeginImageSync());
        Receive<ImageSynced>(m =>
        {
            _imageSyncing = false;
            if (m.Error is { } error)
                ImageFailed("the periodic fsync of the image failed", error);
        });
        Receive<StopGuest>(_ =>
        {
            _stopGuest = true;
            _log.Info("primary {0}: the guest will stay paused after the next checkpoint", _replicaId);
        });
        Receive<ReleaseWhenCommitted>(m =>
        {
            var ledger = Ledger;
            // Writes of the current epoch are covered by its own checkpoint; without any, the last closed one covers all.
            var covering = ledger.WritesInEpoch > 0 ? ledger.Epoch : ledger.LastClosed;
            var requester = Sender;
            // Someone waits on the open epoch (a write or FLUSH reply): ask for its close now rather than at the next tick.
            if (covering > ledger.LastClosed)
                AskForCheckpoint(ledger, again: false);
            _gate!.HoldUntilCommitted(covering, () => requester.Tell(m.Output));
        });
        Receive<GuestRead>(Read);
        Receive<AssignPrimary>(m =>
        {
            switch (Ledger.Fence(m.Generation))
            {
                case FenceVerdict.Current:
                    // A resent assignment (the coordinator resends until RoleAssumed).
                    Sender.Tell(new RoleAssumed(m.Generation, _replicaId, ReplicaRole.Primary));
                    break;
                case FenceVerdict.Stale:
                    Sender.Tell(new StaleGeneration(Ledger.Generation, m.Generation, nameof(AssignPrimary)));
                    break;
                default:
                    _log.Warning("primary {0} of generation {1}: AssignPrimary of generation {2} needs a new primary actor; ignored",
                        _replicaId, Ledger.Generation, m.Generation);
                    break;
            }
        });
        Receive<SecondaryLost>(m => Drop(m.Id, m.Sender, m.Error ?? new DataPlaneConnectionException("the data-plane connection closed")));
        Receive<LeftReplicaSet>(LeaveOut);
        Receive<SyncAcknowledged>(OnSyncAcknowledged);
        Receive<SyncNotAcknowledged>(m => _coordinator.Tell(new ResyncFailed(Ledger.Generation, m.Copy.ReplicaId,
            $"sync-complete was not acknowledged: {m.Error.Message}", m.Copy.Attempt)));
        Receive<GuestResumed>(_ => { });
        Receive<GuestRestored>(_ => { });
        Receive<GuestCommandRefused>(m => GuestFailed($"guest refused {m.Command.GetType().Name}: {m.Reason}"));
        Receive<Terminated>(m => m.ActorRef.Equals(_guest), _ => GuestFailed("the guest actor stopped"));
        Receive<GetPrimaryStatus>(_ => Sender.Tell(Status(state)));
    }

    /// <summary>Applies a guest write and streams it; <paramref name="state"/> is the state it arrived in (for the status while sends wait).</summary>
    private void Write(GuestWrite m, string state)
    {
        var guest = Sender;
        if (m.Data.Length > _settings.DataPlane.MaxPayloadBytes)
        {
            guest.Tell(new GuestWriteFailed(m.Tag, $"write of {m.Data.Length} B exceeds the data plane's limit of {_settings.DataPlane.MaxPayloadBytes} B"));
            return;
        }
        var ledger = Ledger;
        var epoch = ledger.Epoch;
        try
        {
            if (_alone is not null)
                _alone.Write(epoch, m.Offset, m.Data);
            else
                _image!.Write(m.Offset, m.Data);
        }
        catch (VolumeRangeException e)
        {
            guest.Tell(new GuestWriteFailed(m.Tag, e.Message));
            return;
        }
        catch (Exception e) when (IsDiskError(e))
        {
            // Part of it may be in the image (EIO, ENOSPC mid-write), none of it in any secondary:
            // the image no longer matches the stream, so this primary must not go on (ImageFailed).
            guest.Tell(new GuestWriteFailed(m.Tag, $"I/O error: {e.Message}"));
            ImageFailed($"write of {m.Data.Length} B at {m.Offset} failed", e);
            return;
        }
        var sequence = ledger.RecordWrite(m.Data.Length);
        SendToAll(s => s.SendWriteAsync(epoch, sequence, m.Offset, m.Data), () => guest.Tell(new GuestWriteCompleted(m.Tag)), state);
    }

    private void Read(GuestRead m)
    {
        if (m.Length < 0 || m.Length > _settings.DataPlane.MaxPayloadBytes)
        {
            Sender.Tell(new GuestReadFailed(m.Tag, $"read of {m.Length} B is outside 0..{_settings.DataPlane.MaxPayloadBytes} B"));
            return;
        }
        var data = new byte[m.Length];
        try
        {
            if (_alone is not null)
                _alone.Read(m.Offset, data);
            else
                _image!.Read(m.Offset, data);
        }
        catch (VolumeRangeException e)
        {
            Sender.Tell(new GuestReadFailed(m.Tag, e.Message));
            return;
        }
        catch (Exception e) when (IsDiskError(e))
        {
            _log.Error(e, "primary {0}: read of {1} B at {2} failed", _replicaId, m.Length, m.Offset);
            Sender.Tell(new GuestReadFailed(m.Tag, $"I/O error: {e.Message}"));
            return;
        }
        Sender.Tell(new GuestReadCompleted(m.Tag, data));
    }

    /// <summary>
    /// Fencing: a message of an older generation is answered with <see cref="StaleGeneration"/>, one
    /// of a newer generation is for a new primary actor; either way it changes nothing here.
    /// </summary>
    private bool IsCurrent(IFencedMessage m)
    {
        var ledger = Ledger;
        switch (ledger.Fence(m.Generation))
        {
            case FenceVerdict.Stale:
                Sender.Tell(new StaleGeneration(ledger.Generation, m.Generation, m.GetType().Name));
                return false;
            case FenceVerdict.Newer:
                _log.Warning("primary {0} of generation {1}: {2} of newer generation {3} ignored", _replicaId, ledger.Generation, m.GetType().Name, m.Generation);
                return false;
            default:
                return true;
        }
    }

    // ---- Closing ----------------------------------------------------------------------------

    private void BeginClose(CloseEpoch m)
    {
        var ledger = Ledger;
        if (!IsCurrent(m))
            return;
        switch (ledger.Classify(m.Epoch))
        {
            case CloseRequest.Repeat:
                if (ledger.Find(m.Epoch) is { State: not null } done)
                    Sender.Tell(new EpochClosed(ledger.Generation, done.Epoch, done.Writes, done.Bytes, GuestStoppedAt(done.Epoch)));
                else
                    _log.Warning("primary {0}: CloseEpoch({1}) repeated, but checkpoint {1} is no longer held (committed {2}); ignored",
                        _replicaId, m.Epoch, ledger.LastCommitted);
                return;
            case CloseRequest.OutOfOrder:
                _log.Warning("primary {0}: CloseEpoch({1}) out of order (last closed {2}); ignored", _replicaId, m.Epoch, ledger.LastClosed);
                return;
        }
        BecomeClosing(m.Epoch);
    }

    /// <summary>Entry to Closing: the guest is asked to pause; its GuestPaused starts the marker and the capture.</summary>
    private void BecomeClosing(long epoch)
    {
        _closing = epoch;
        _capturing = false;
        _closeRequester = ReplyTarget;
        Become(Closing);
        _guest!.Tell(new PauseGuest(epoch));
    }

    private void Closing()
    {
        // Until GuestPaused the guest's last writes of the epoch still arrive; after it, a write
        // (from a misbehaving guest) waits for the next epoch.
        Receive<GuestWrite>(_ => !_capturing, m => Write(m, nameof(Closing)));
        Receive<GuestPaused>(m => m.Epoch == _closing && !_capturing, _ =>
        {
            _capturing = true;
            var closed = Ledger.CloseEpoch();
            SendToAll(s => s.SendMarkerAsync(closed.Epoch, closed.MarkerSequence, closed.Writes, closed.Bytes),
                () => _guest!.Tell(new CaptureGuestState(closed.Epoch)), nameof(Closing));
        });
        Receive<GuestStateCaptured>(m => m.Epoch == _closing && _capturing, m =>
        {
            var sequence = Ledger.AttachState(m.Epoch, m.State);
            SendToAll(s => s.SendGuestStateAsync(m.Epoch, sequence, m.State), FinishClose, nameof(Closing));
        });
        // A guest failing mid-close abandons the close (handled before CommonWhileAssigned's own).
        Receive<GuestCommandRefused>(m => AbortClose(GuestFailed($"guest refused {m.Command.GetType().Name}: {m.Reason}")));
        Receive<Terminated>(m => m.ActorRef.Equals(_guest), _ => AbortClose(GuestFailed("the guest actor stopped")));
        // The coordinator sends StopGuest before the CloseEpoch of the checkpoint the guest stops at;
        // one arriving during a close belongs to the next close, not to this one.
        Receive<StopGuest>(_ => Stash.Stash());
        CommonWhileAssigned(nameof(Closing));
        ReceiveAny(_ => Stash.Stash());
    }

    private void FinishClose()
    {
        var ledger = Ledger;
        var closed = ledger.Find(_closing)!;
        if (!KeepIfAlone(closed))
            return;
        if (!_stopGuest)
        {
            _guest!.Tell(new ResumeGuest(ledger.Epoch));
        }
        else if (_stoppedAt is null)
        {
            _stoppedAt = _closing;
            _log.Info("primary {0}: guest stopped at checkpoint {1}", _replicaId, _closing);
            // Saved before EpochClosed, so before the coordinator can commit the checkpoint and
            // answer GuestStopped: whoever hears GuestStopped finds the files in place. No write
            // follows (the guest stays paused), so the image is the checkpoint's already.
            if (closed.State is { } state)
                SaveStoppedCheckpoint(_closing, state);
        }
        _closeRequester.Tell(new EpochClosed(ledger.Generation, closed.Epoch, closed.Writes, closed.Bytes, GuestStoppedAt(closed.Epoch)));
        _closeRequester = ActorRefs.Nobody;
        BecomeRunning();
    }

    /// <summary>
    /// A primary that no secondary follows is the only holder of the checkpoint it just closed: it
    /// keeps it on its own disk (attaching a rollback store at the first one, preparing each later
    /// one) before the coordinator hears that it closed, so before it can commit. Once a secondary
    /// follows again (in sync, and the last commit had it), its prepare holds the new checkpoints;
    /// the store stays, unprepared, until a commit covers the ones only it holds. False if the
    /// image failed (the primary stops).
    /// </summary>
    private bool KeepIfAlone(ClosedCheckpoint closed)
    {
        var alone = _lastCommitOnNoSecondary || _fanOut.OnlyTo(_copy?.ReplicaId); // a joiner holds no checkpoint yet
        if (!alone)
            return true;
        try
        {
            if (_alone is null)
            {
                // Through the primary's own image first: an error the background fsync already took
                // (sticky there) would not be reported to the store's newly opened file.
                _image!.Flush();
                _alone = PrimaryAloneCheckpoints.Attach(_directory, _volume!, closed.Epoch, closed.State, _settings.StoreOptions);
                _log.Warning("primary {0}: no secondary holds the checkpoints of generation {1}; keeping them here from checkpoint {2} on " +
                    "(rollback logs in its store), so that it can come back from a crash on its own", _replicaId, Ledger.Generation, closed.Epoch);
            }
            else
                _alone.Prepare(closed.Epoch, closed.State);
            return true;
        }
        catch (Exception e) when (IsDiskError(e))
        {
            ImageFailed($"keeping checkpoint {closed.Epoch} on the primary alone failed", e);
            return false;
        }
    }

    /// <summary>
    /// The commit of a checkpoint the primary keeps alone drops its logs; one a secondary prepared
    /// ends keeping them once it covers every checkpoint prepared here (until then, losing that
    /// secondary would leave the later ones on this disk only).
    /// </summary>
    private bool CommitIfAlone(Commit m)
    {
        _lastCommitOnNoSecondary = m.Secondaries == 0;
        if (_alone is null)
            return true;
        try
        {
            if (m.Secondaries == 0 && m.Epoch > _alone.Prepared)
            {
                // Closed while a secondary followed, committed once it was lost: only this disk holds
                // it now, so it is prepared here late (its guest state is still in the ledger).
                _alone.Prepare(m.Epoch, Ledger.Find(m.Epoch)?.State);
            }
            if (m.Secondaries == 0 || m.Epoch < _alone.Prepared)
            {
                _alone.Commit(m.Epoch);
                return true;
            }
            _alone.Detach(_directory);
            _alone = null;
            _log.Info("primary {0}: checkpoint {1} committed on {2} secondaries; no longer keeping checkpoints alone", _replicaId, m.Epoch, m.Secondaries);
            return true;
        }
        catch (Exception e) when (IsDiskError(e))
        {
            ImageFailed($"committing checkpoint {m.Epoch} on the primary alone failed", e);
            return false;
        }
    }

    /// <summary>An I/O error, or the storage engine's own (a store that can no longer vouch, an epoch out of order).</summary>
    private static bool IsDiskError(Exception e) => e is IOException or StorageException;

    /// <summary>True for the checkpoint the guest stopped at and the (empty) ones closed after it.</summary>
    private bool GuestStoppedAt(long epoch) => _stoppedAt is { } stopped && epoch >= stopped;

    private void AbortClose(string reason)
    {
        // No EpochClosed: the coordinator's checkpoint stays open and it decides (timeout, failover).
        _log.Error("primary {0}: closing epoch {1} abandoned: {2}", _replicaId, _closing, reason);
        _closeRequester = ActorRefs.Nobody;
        BecomeRunning();
    }

    /// <summary>Records and logs a guest failure (the status reports it); returns <paramref name="reason"/>.</summary>
    private string GuestFailed(string reason)
    {
        _guestFailure = reason;
        _log.Error("primary {0}: guest failure: {1}", _replicaId, reason);
        return reason;
    }

    // ---- Commit -----------------------------------------------------------------------------

    private void OnCommit(Commit m)
    {
        var ledger = Ledger;
        if (!IsCurrent(m))
            return;
        // The stopped checkpoint's state must be taken before the commit drops older checkpoints.
        byte[]? stoppedState = null;
        if (_stoppedAt is { } stopped && !_stoppedStateSaved && m.Epoch >= stopped && m.Epoch <= ledger.LastClosed)
            stoppedState = ledger.Find(stopped)?.State;
        switch (ledger.Commit(m.Epoch))
        {
            case CommitOutcome.NotClosedYet:
                _log.Warning("primary {0}: Commit({1}) of a checkpoint not closed yet (last closed {2}); ignored", _replicaId, m.Epoch, ledger.LastClosed);
                return;
            case CommitOutcome.AlreadyCommitted:
                return;
        }
        if (!CommitIfAlone(m))
            return;
        ReleaseOutput(m);
        // The coordinator drops a CheckpointNow while max-in-flight checkpoints are open; this commit
        // freed one, so output still waiting on the open epoch (no close of it begun) asks again.
        if (_gate!.NewestHeld > ledger.LastClosed && _closing < ledger.Epoch && m.Secondaries >= _settings.MinReplicas)
            AskForCheckpoint(ledger, again: true);
        if (stoppedState is not null)
            SaveStoppedCheckpoint(_stoppedAt!.Value, stoppedState);
    }

    /// <summary>
    /// Asks the coordinator to close the open epoch now, once per epoch (group commit: every output
    /// waiting on it shares the one checkpoint), or <paramref name="again"/> after a commit.
    /// </summary>
    private void AskForCheckpoint(PrimaryEpochLedger ledger, bool again)
    {
        if (_checkpointAskedFor == ledger.Epoch && !again)
            return;
        _checkpointAskedFor = ledger.Epoch;
        _coordinator.Tell(new CheckpointNow(ledger.Generation));
    }

    /// <summary>
    /// Releases the output a commit covers if it meets <c>min-replicas</c> (DESIGN.md, degraded
    /// mode): with fewer secondaries the output waits for a later commit that has them (after a
    /// re-protection); with none and min-replicas 0, the image is fsynced first, so that what is
    /// acknowledged is at least durable here.
    /// </summary>
    private void ReleaseOutput(Commit m)
    {
        if (m.Secondaries < _settings.MinReplicas)
        {
            if (_gate!.Pending > 0 && !_outputWaitLogged)
                _log.Warning("primary {0}: {1} output(s) (FLUSH replies) wait: checkpoint {2} committed on {3} secondaries, min-replicas is {4}",
                    _replicaId, _gate.Pending, m.Epoch, m.Secondaries, _settings.MinReplicas);
            _outputWaitLogged = _gate!.Pending > 0;
            return;
        }
        if (_outputWaitLogged)
            _log.Info("primary {0}: checkpoint {1} committed on {2} secondaries: waiting output released", _replicaId, m.Epoch, m.Secondaries);
        _outputWaitLogged = false;
        if (m.Secondaries == 0 && !(_alone?.Prepared >= m.Epoch)) // prepared alone: durable already
        {
            try
            {
                _image!.Flush();
            }
            catch (Exception e) when (IsDiskError(e))
            {
                // Never retried: a second fsync would succeed without the pages the failed one lost.
                ImageFailed($"fsync of the image for checkpoint {m.Epoch} failed", e);
                return;
            }
        }
        _gate!.Commit(m.Epoch);
    }

    /// <summary>
    /// While secondaries hold the checkpoints, nothing on the reply path fsyncs the primary's image
    /// (issue 12: the secondaries' prepare is the durability), so a failed writeback would go
    /// unseen: its pages are marked clean and, once evicted, reads would return older data. An
    /// fsync reports such an error on the next call, so one off the actor's thread every
    /// mcactors.primary.image-sync-interval bounds how long the primary serves from a disk that
    /// lost writes; the failure is then fatal, as any other of its image. Alone, the store's
    /// prepare already fsyncs the image at every checkpoint.
    /// </summary>
    private void BeginImageSync()
    {
        if (_imageSyncing || _alone is not null || _image is not { } image)
            return;
        _imageSyncing = true;
        Task.Run(image.Flush).ContinueWith(
                t => new ImageSynced(t.Exception?.GetBaseException() is { } e and not ObjectDisposedException ? e : null),
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)
            .PipeTo(Self);
    }

    private void SaveStoppedCheckpoint(long epoch, byte[] state)
    {
        // The guest is paused for good: make image and state durable so they can be verified offline.
        // A failure here costs the offline check, not replication: log it, don't crash the primary.
        try
        {
            _image!.Flush();
        }
        catch (IOException e)
        {
            // Unlike the state file below, the image is the replication's: a later fsync must never vouch for it.
            ImageFailed($"fsync of the image for the stopped checkpoint {epoch} failed", e);
            return;
        }
        try
        {
            var path = PrimaryVolumeFiles.SaveState(_directory, epoch, state);
            _alone?.Keep(epoch);
            _stoppedStateSaved = true;
            _log.Info("primary {0}: checkpoint {1} committed with the guest stopped; state saved to {2}", _replicaId, epoch, path);
        }
        catch (IOException e)
        {
            _log.Error(e, "primary {0}: cannot save the stopped guest's state of checkpoint {1}", _replicaId, epoch);
        }
    }

    /// <summary>
    /// The image failed a write or an fsync: it may now hold bytes never streamed (a partial write) or
    /// lack bytes it was believed to hold (a failed writeback's pages are marked clean, and the next
    /// fsync succeeds without them). Fatal for this primary: it stops serving and vouches for
    /// nothing more (held output is never released; the guest, a child, stops with it, and an NBD
    /// client gets an error, not a success). The coordinator fails over to a secondary that holds
    /// the last committed checkpoint, or the volume waits for one.
    /// </summary>
    private void ImageFailed(string what, Exception e)
    {
        _log.Error(e, "primary {0}: {1}; this image can no longer be trusted: stopping the primary", _replicaId, what);
        _coordinator.Tell(new ReplicaFailed(Ledger.Generation, _replicaId, $"primary image failed: {what}: {e.Message}"));
        Context.Stop(Self);
    }

    // ---- Re-protection (ResyncProtocol.cs) ----------------------------------------------------

    /// <summary>
    /// A joiner is ready: connect to it, starting at the next sequence of the shared stream. The
    /// guest waits the few milliseconds of that connect, because every frame from that sequence
    /// on must reach the joiner too.
    /// </summary>
    private void BeginJoin(AddSecondary m)
    {
        if (!IsCurrent(m))
            return;
        var id = m.Endpoint.ReplicaId;
        if (_copy is not null)
        {
            _coordinator.Tell(new ResyncFailed(Ledger.Generation, id, $"the primary is resyncing {_copy.ReplicaId}; one at a time", m.Attempt));
            return;
        }
        if (ResyncCopy.Refusal(m, _volume!) is { } problem)
        {
            // A joiner's bad digest is its problem, never a reason for the primary to fail.
            _log.Error("primary {0}: resync of {1} refused: {2}", _replicaId, id, problem);
            _coordinator.Tell(new ResyncFailed(Ledger.Generation, id, problem, m.Attempt));
            return;
        }
        foreach (var (oldId, oldSender) in _fanOut.To(id))
            Drop(oldId, oldSender, new DataPlaneConnectionException("it joins again"));
        _log.Info("primary {0}: resyncing {1} at {2}:{3}, streaming to it from sequence {4}", _replicaId, id, m.Endpoint.Host, m.Endpoint.Port, Ledger.NextSequence);
        _connector.ConnectAsync(m.Endpoint.Host, m.Endpoint.Port, new DataPlaneVolume(_volume!.VolumeId, _volume.BlockSize), Ledger.Generation,
                Ledger.NextSequence, _settings.DataPlane)
            .PipeTo(Self,
                success: sender => new JoinerConnected(m, sender),
                failure: e => new JoinerConnectFailed(m, e is AggregateException a ? a.GetBaseException() : e));
        Become(Joining);
    }

    private void Joining()
    {
        Receive<JoinerConnected>(m =>
        {
            var id = m.Join.Endpoint.ReplicaId;
            _fanOut.Add(id, m.Sender, joinedBy: m.Join.Attempt);
            WatchCompletion(id, m.Sender);
            _copy = new ResyncCopy(id, m.Sender, _volume!.SizeBytes, m.Join.ChunkBytes, m.Join.Digest) { Attempt = m.Join.Attempt };
            BecomeRunning();
            Self.Tell(CopyNext.Instance);
        });
        Receive<JoinerConnectFailed>(m =>
        {
            _log.Error(m.Error, "primary {0}: cannot connect to joiner {1}", _replicaId, m.Join.Endpoint.ReplicaId);
            _coordinator.Tell(new ResyncFailed(Ledger.Generation, m.Join.Endpoint.ReplicaId, $"cannot connect: {m.Error.Message}", m.Join.Attempt));
            BecomeRunning();
        });
        Receive<GetPrimaryStatus>(_ => Sender.Tell(Status(nameof(Joining))));
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>One step of the copy: scan on, send the next differing chunk to the joiner (back-pressured), or finish.</summary>
    private void CopyStep()
    {
        if (_copy is not { } copy)
            return;
        if (!_fanOut.Contains(copy.Sender))
        {
            _copy = null;
            _log.Warning("primary {0}: resync of {1} abandoned: its connection is gone", _replicaId, copy.ReplicaId);
            _coordinator.Tell(new ResyncFailed(Ledger.Generation, copy.ReplicaId, "the data-plane connection closed during the copy", copy.Attempt));
            return;
        }
        try
        {
            _alone?.Drain(); // the copy reads the image file: queued writes first (no write comes in during this turn)
        }
        catch (Exception e) when (IsDiskError(e))
        {
            ImageFailed("draining the primary's write-ahead queue for the resync copy failed", e);
            return;
        }
        // Up to one scan step per turn: differing chunks go out back to back while the window has
        // room; a full window ends the turn, and the copy goes on when the send settles.
        var turn = copy.Turn(_image!, _settings.ResyncScanStep, (offset, data) => SendChunk(copy, offset, data));
        ReportCopyProgress(copy, force: false);
        switch (turn)
        {
            case CopyTurn.WaitingForWindow:
                return;
            case CopyTurn.MoreToScan:
                Self.Tell(CopyNext.Instance);
                return;
        }
        var from = Ledger.Epoch;
        SendToAll(s => s.SendSyncCompleteAsync(from), over: nameof(Running), only: copy.ReplicaId, then: () =>
        {
            _copy = null;
            if (!_fanOut.Contains(copy.Sender))
            {
                _coordinator.Tell(new ResyncFailed(Ledger.Generation, copy.ReplicaId, "the connection closed as the copy ended", copy.Attempt));
                return;
            }
            // "Sent" is only "written to the socket": the coordinator hears of it once the joiner acknowledged it.
            copy.Sender.WaitForFramesAcknowledgedAsync(copy.Sender.FramesSent).PipeTo(Self,
                success: () => new SyncAcknowledged(copy, from),
                failure: e => new SyncNotAcknowledged(copy, e.GetBaseException()));
        });
    }

    /// <summary>Sends one chunk to the joiner; true if it went out within this turn, else the copy goes on once it did.</summary>
    private bool SendChunk(ResyncCopy copy, long offset, byte[] data)
    {
        var epoch = Ledger.Epoch;
        var inTurn = true;
        var sentInTurn = false;
        SendToAll(s => s.SendCopyAsync(epoch, offset, data), () =>
        {
            if (inTurn)
                sentInTurn = true;
            else
                Self.Tell(CopyNext.Instance);
        }, nameof(Running), only: copy.ReplicaId);
        inTurn = false;
        return sentInTurn;
    }

    private void OnSyncAcknowledged(SyncAcknowledged m)
    {
        var copy = m.Copy;
        ReportCopyProgress(copy, force: true);
        _assignedSecondaries++;
        _log.Info("primary {0}: {1} is in sync from checkpoint {2} ({3:0.0} of {4:0.0} MiB differed and were copied)",
            _replicaId, copy.ReplicaId, m.From, copy.CopiedBytes / 1048576.0, copy.ScannedBytes / 1048576.0);
        _coordinator.Tell(new ResyncCompleted(Ledger.Generation, copy.ReplicaId, m.From, copy.Attempt));
    }

    private void ReportCopyProgress(ResyncCopy copy, bool force)
    {
        if (!copy.ProgressDue(force))
            return;
        _coordinator.Tell(new ResyncStatus(Ledger.Generation, copy.Progress, copy.Attempt));
        _log.Info("primary {0}: resync of {1}: {2:0}% scanned, {3:0.0} MiB copied", _replicaId, copy.ReplicaId,
            copy.ScannedPercent, copy.CopiedBytes / 1048576.0);
    }

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

    /// <summary>The status, in <paramref name="state"/>: the receive function answering.</summary>
    private PrimaryStatus Status(string state)
    {
        var ledger = _ledger;
        return new PrimaryStatus(
            ledger?.Generation ?? 0, ledger?.Epoch ?? 0, ledger?.TotalWrites ?? 0, ledger?.TotalBytes ?? 0,
            ledger?.LastClosed ?? 0, ledger?.LastCommitted ?? 0,
            _fanOut.Ids, ledger is not null && (_fanOut.Count == 0 || _fanOut.Count < _assignedSecondaries), _fanOut.OutstandingBytes,
            state, _stoppedAt is not null, _guestFailure);
    }

    protected override void PostStop()
    {
        var closing = _fanOut.CloseAll();
        try
        {
            // Bounded: a sender closes within its close timeout.
            closing.Wait(_settings.DataPlane.CloseTimeout + TimeSpan.FromSeconds(1));
        }
        catch (AggregateException e)
        {
            _log.Debug("primary {0}: closing the data plane: {1}", _replicaId, e.GetBaseException().Message);
        }
        try
        {
            _alone?.Dispose();
        }
        catch (Exception e) when (IsDiskError(e))
        {
            _log.Error(e, "primary {0}: closing the store it kept alone", _replicaId);
        }
        _image?.Dispose();
        base.PostStop();
    }

    // ---- Internal messages ------------------------------------------------------------------

    private sealed record SecondaryConnected(SecondaryEndpoint Endpoint, IReplicaStream Sender);

    private sealed record JoinerConnected(AddSecondary Join, IReplicaStream Sender);

    private sealed record JoinerConnectFailed(AddSecondary Join, Exception Error);

    private sealed record SyncAcknowledged(ResyncCopy Copy, long From);

    private sealed record SyncNotAcknowledged(ResyncCopy Copy, Exception Error);

    private sealed record CopyNext
    {
        public static readonly CopyNext Instance = new();
    }

    private sealed record SecondaryConnectFailed(SecondaryEndpoint Endpoint, Exception Error);

    private sealed record SecondaryLost(string Id, IReplicaStream Sender, Exception? Error);

    private sealed record SendsSettled(long Token, IReadOnlyList<StreamFailure> Failures);

    private sealed record SendStalled(long Token);

    private sealed record SyncImage
    {
        public static readonly SyncImage Instance = new();
    }

    /// <summary>The periodic fsync of the image ended; <paramref name="Error"/> is its I/O error, if any.</summary>
    private sealed record ImageSynced(Exception? Error);

    private const string SendStallTimer = "send-stall";
    private const string ImageSyncTimer = "image-sync";
}
