using Akka.Actor;
using Akka.Event;
using McActors.Protocol;

namespace McActors.Replication;

/// <summary>The primary's side of a commit: output released by min-replicas, checkpoints asked for, the image's fsyncs, the stopped guest's files, and the image failing.</summary>
public sealed partial class PrimaryActor
{
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
        if (m.Secondaries == 0 && !_disk!.DurableAt(m.Epoch)) // prepared alone: durable already
        {
            try
            {
                _disk.Image.Flush();
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
        if (_imageSyncing || _disk is not { KeepsCheckpointsAlone: false } disk)
            return;
        var image = disk.Image;
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
            _disk!.Image.Flush();
        }
        catch (IOException e)
        {
            // Unlike the state file below, the image is the replication's: a later fsync must never vouch for it.
            ImageFailed($"fsync of the image for the stopped checkpoint {epoch} failed", e);
            return;
        }
        try
        {
            var path = _disk.SaveStoppedState(epoch, state);
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
}
