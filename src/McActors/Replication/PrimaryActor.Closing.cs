using Akka.Actor;
using Akka.Event;
using McActors.Guests;
using McActors.Protocol;

namespace McActors.Replication;

/// <summary>The primary's epoch close (pause, marker, guest state, resume or stop) and the checkpoints it keeps alone.</summary>
public sealed partial class PrimaryActor
{
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

    /// <summary>Keeps the checkpoint just closed on this disk if no secondary holds it (<see cref="PrimaryDisk.KeepIfAlone"/>); false if the image failed (the primary stops).</summary>
    private bool KeepIfAlone(ClosedCheckpoint closed)
    {
        try
        {
            // A joiner holds no checkpoint yet.
            if (_disk!.KeepIfAlone(closed.Epoch, closed.State, followed: !_fanOut.OnlyTo(_copy?.ReplicaId)))
                _log.Warning("primary {0}: no secondary holds the checkpoints of generation {1}; keeping them here from checkpoint {2} on " +
                    "(rollback logs in its store), so that it can come back from a crash on its own", _replicaId, Ledger.Generation, closed.Epoch);
            return true;
        }
        catch (Exception e) when (IsDiskError(e))
        {
            ImageFailed($"keeping checkpoint {closed.Epoch} on the primary alone failed", e);
            return false;
        }
    }

    /// <summary>Commits a checkpoint kept on this disk (<see cref="PrimaryDisk.CommitIfAlone"/>); false if the image failed (the primary stops).</summary>
    private bool CommitIfAlone(Commit m)
    {
        try
        {
            if (_disk!.CommitIfAlone(m, Ledger.Find(m.Epoch)?.State))
                _log.Info("primary {0}: checkpoint {1} committed on {2} secondaries; no longer keeping checkpoints alone", _replicaId, m.Epoch, m.Secondaries);
            return true;
        }
        catch (Exception e) when (IsDiskError(e))
        {
            ImageFailed($"committing checkpoint {m.Epoch} on the primary alone failed", e);
            return false;
        }
    }

    private static bool IsDiskError(Exception e) => PrimaryDisk.IsDiskError(e);

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
}
