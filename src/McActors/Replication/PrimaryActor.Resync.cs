using Akka.Actor;
using Akka.Event;
using McActors.DataPlane;
using McActors.Protocol;

namespace McActors.Replication;

/// <summary>The primary's side of re-protection (ResyncProtocol.cs): connecting a joiner and driving its <see cref="ResyncCopy"/>.</summary>
public sealed partial class PrimaryActor
{
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
            _disk!.DrainWriteAhead(); // the copy reads the image file: queued writes first (no write comes in during this turn)
        }
        catch (Exception e) when (IsDiskError(e))
        {
            ImageFailed("draining the primary's write-ahead queue for the resync copy failed", e);
            return;
        }
        // Up to one scan step per turn: differing chunks go out back to back while the window has
        // room; a full window ends the turn, and the copy goes on when the send settles.
        var turn = copy.Turn(_disk.Image, _settings.ResyncScanStep, (offset, data) => SendChunk(copy, offset, data));
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

    // ---- Internal messages ------------------------------------------------------------------

    private sealed record JoinerConnected(AddSecondary Join, IReplicaStream Sender);

    private sealed record JoinerConnectFailed(AddSecondary Join, Exception Error);

    private sealed record SyncAcknowledged(ResyncCopy Copy, long From);

    private sealed record SyncNotAcknowledged(ResyncCopy Copy, Exception Error);

    private sealed record CopyNext
    {
        public static readonly CopyNext Instance = new();
    }
}
