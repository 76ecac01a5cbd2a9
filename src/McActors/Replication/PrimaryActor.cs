using Akka.Actor;
using Akka.Event;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Replication;

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
/// streams in <see cref="ReplicaFanOut"/>, the resync copy in <see cref="ResyncCopy"/>, the image
/// and the checkpoints kept alone in <see cref="PrimaryDisk"/>.
/// <para>
/// One actor, one mailbox: guest writes, closes, commits and copy steps must interleave in its
/// turn order (a chunk read before a later write to it is streamed), so what stays actor code is
/// split by concern over partial files: this one (states, guest I/O, status), .Closing, .Commit,
/// .Resync and .Streaming.
/// </para>
/// </summary>
public sealed partial class PrimaryActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private readonly string _replicaId;
    private readonly string _directory;
    private readonly IActorRef _coordinator;
    private readonly McActorsSettings _settings;
    // Open-epoch bytes between two EpochProgress reports; null under the fixed interval (no reports).
    private readonly long? _progressStep;
    private readonly Func<GuestContext, Props> _guestProps;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly IReplicaStreamConnector _connector;
    private readonly ReplicaFanOut _fanOut = new();
    private PrimaryEpochLedger? _ledger;
    private PrimaryOutputGate? _gate;
    private PrimaryDisk? _disk;
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
        _progressStep = settings.CheckpointPolicy == Checkpointing.Policies.FixedIntervalPolicy.Name
            ? null
            : Math.Max(1, settings.DirtyBytesThreshold / 4);
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
        _disk = PrimaryDisk.Open(_directory, m.Volume, _settings);
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
            // Without a state file the guest is handed an empty state, and decides: one whose disk is
            // its state (NBD) runs on; one that cannot rebuild itself refuses and stops, rather than
            // running fresh over the checkpoint's disk.
            var state = PrimaryVolumeFiles.LoadState(_directory, ledger.LastCommitted);
            if (state is null)
                _log.Warning("primary {0}: no guest state for checkpoint {1} in {2}; the guest gets an empty one",
                    _replicaId, ledger.LastCommitted, PrimaryVolumeFiles.StatePath(_directory, ledger.LastCommitted));
            _guest.Tell(new RestoreGuestState(ledger.LastCommitted, state ?? []));
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
            _disk!.Write(epoch, m.Offset, m.Data);
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
        ReportProgress(ledger, m.Data.Length);
        SendToAll(s => s.SendWriteAsync(epoch, sequence, m.Offset, m.Data), () => guest.Tell(new GuestWriteCompleted(m.Tag)), state);
    }

    /// <summary>
    /// Tells the coordinator how much the open epoch holds each time it grows past another quarter
    /// of the dirty-bytes threshold, for a policy that closes on size; the fixed interval (the
    /// default) decides on time alone, so under it nothing is sent and its closes stay as they were.
    /// </summary>
    private void ReportProgress(PrimaryEpochLedger ledger, int length)
    {
        if (_progressStep is { } step && (ledger.BytesInEpoch - length) / step != ledger.BytesInEpoch / step)
            _coordinator.Tell(new EpochProgress(ledger.Generation, ledger.Epoch, ledger.WritesInEpoch, ledger.BytesInEpoch));
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
            _disk!.Read(m.Offset, data);
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
            _disk?.Dispose();
        }
        catch (Exception e) when (IsDiskError(e))
        {
            _log.Error(e, "primary {0}: closing the store it kept alone", _replicaId);
        }
        base.PostStop();
    }

    // ---- Internal messages ------------------------------------------------------------------

    private sealed record SecondaryConnected(SecondaryEndpoint Endpoint, IReplicaStream Sender);

    private sealed record SecondaryConnectFailed(SecondaryEndpoint Endpoint, Exception Error);

    private sealed record SyncImage
    {
        public static readonly SyncImage Instance = new();
    }

    /// <summary>The periodic fsync of the image ended; <paramref name="Error"/> is its I/O error, if any.</summary>
    private sealed record ImageSynced(Exception? Error);

    private const string ImageSyncTimer = "image-sync";
}
