using Akka.Actor;
using Akka.Event;
using McActors.Storage;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// Owns the one <see cref="RollbackStore"/> of a secondary, in a directory: opens it on start
/// (recovers it if the directory holds one, else creates it) and publishes it in the
/// <see cref="StoreGate"/>, through which the data plane writes directly. Prepare, commit and
/// rollback arrive as messages (StoreProtocol.cs) and run under the gate's lock.
/// Exceptions escape to the supervisor (<see cref="StoreSupervision"/>): a restart reopens the
/// store from disk, which is the only thing that can tell what is true after a failure.
/// For a resync the first open is <see cref="RollbackStore.OpenForResync"/> (the image is kept only
/// as a source of chunks that need no copy; their hashes go to the parent); a restart before the
/// resync completed finds a store that cannot vouch, and stops.
/// </summary>
public sealed class RollbackStoreActor : ReceiveActor
{
    private readonly string _directory;
    private readonly VolumeDescriptor _volume;
    private readonly StoreGate _gate;
    private readonly RollbackStoreOptions _options;
    private readonly bool _resync;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _incarnation;

    public RollbackStoreActor(string directory, VolumeDescriptor volume, StoreGate gate, RollbackStoreOptions options, bool resync = false)
    {
        _directory = directory;
        _volume = volume;
        _gate = gate;
        _options = options;
        _resync = resync;
        Open();
    }

    public static Props Props(string directory, VolumeDescriptor volume, StoreGate gate, RollbackStoreOptions options, bool resync = false) =>
        Akka.Actor.Props.Create(() => new RollbackStoreActor(directory, volume, gate, options, resync));

    protected override void PreStart()
    {
        if (_resync)
            OpenForResync();
        else
            OpenFromDisk();
    }

    // A restart never resyncs again: the copy under way counts on this image; recovery decides.
    protected override void PostRestart(Exception reason) => OpenFromDisk();

    private void OpenForResync()
    {
        var store = RollbackStore.OpenForResync(_directory, _volume, _options);
        ResyncDigest digest;
        try
        {
            var chunkBytes = ImageDigest.ChunkBytesFor(_volume.SizeBytes, _volume.BlockSize);
            var hashes = ImageDigest.Compute(Path.Combine(_directory, RollbackStore.ImageFileName), _volume.SizeBytes, chunkBytes);
            var bytes = new byte[hashes.Length * 16];
            for (var i = 0; i < hashes.Length; i++)
                System.Buffers.Binary.BinaryPrimitives.WriteUInt128LittleEndian(bytes.AsSpan(i * 16, 16), hashes[i]);
            digest = new ResyncDigest(chunkBytes, bytes);
        }
        catch
        {
            store.Dispose();
            throw;
        }
        _incarnation = _gate.Publish(store);
        _log.Info("store at {0} open for a resync as incarnation {1}: {2} chunks of {3} B hashed", _directory, _incarnation,
            digest.Hashes.Length / 16, digest.ChunkBytes);
        Context.Parent.Tell(new StoreReady(_incarnation, store.CommittedEpoch, store.PreparedEpoch, Recovered: false) { Digest = digest });
    }

    private void OpenFromDisk()
    {
        var recovered = File.Exists(Path.Combine(_directory, VolumeDescriptor.FileName));
        var store = recovered ? RollbackStore.Recover(_directory, _options) : RollbackStore.Create(_directory, _volume, _options);
        try
        {
            if (store.Descriptor != _volume)
                throw new CannotVouchException(Path.Combine(_directory, VolumeDescriptor.FileName),
                    $"the store holds volume {store.Descriptor}, but volume {_volume} was assigned");
            // Writes of epochs after the prepared checkpoint came from a stream that is gone: undo
            // them, so the image is exactly a checkpoint and the stream can resume right after it.
            if (store.CurrentEpoch > store.PreparedEpoch)
            {
                var undone = store.RollbackTo(store.PreparedEpoch);
                _log.Info("store at {0}: rolled back the unprepared tail to checkpoint {1} ({2} logs, {3} blocks)",
                    _directory, undone.Checkpoint, undone.LogsApplied, undone.BlocksRestored);
            }
        }
        catch
        {
            store.Dispose();
            throw;
        }
        _incarnation = _gate.Publish(store);
        _log.Info("store at {0} open as incarnation {1}: committed {2}, prepared {3}{4}",
            _directory, _incarnation, store.CommittedEpoch, store.PreparedEpoch, recovered ? " (recovered)" : " (created)");
        Context.Parent.Tell(new StoreReady(_incarnation, store.CommittedEpoch, store.PreparedEpoch, recovered));
    }

    protected override void PostStop() => _gate.Withdraw()?.Dispose();

    /// <summary>fsyncs the guest states of a prepare; the I/O error that stopped it, or null.</summary>
    private static string? MakeDurable(GuestStatesToSync states)
    {
        try
        {
            states.Files.MakeDurable(states.Epochs);
            return null;
        }
        catch (IOException e)
        {
            return $"guest state of checkpoint {states.Epochs[^1]} cannot be made durable: {e.Message}";
        }
    }

    private void Open()
    {
        Receive<PrepareStore>(m =>
        {
            if (m.Incarnation is { } expected && expected != _incarnation)
            {
                // The writes this prepare was meant to cover were undone by a reopen or rollback.
                _log.Warning("dropping prepare of checkpoint {0} for store incarnation {1}: the store is incarnation {2} now",
                    m.Epoch, expected, _incarnation);
                return;
            }
            // Every write of the epochs up to m.Epoch is in the store (the stream applied marker and
            // state before the prepare was asked). The image's fsync, the long part under load, runs
            // outside the gate: the next epoch's writes go on meanwhile instead of filling the
            // primary's window (they are protected by their own undo records, made durable first).
            // Each step checks, under the gate, that the store is still the incarnation the prepare
            // is for: a store failed by the stream (a write error) or by its own fsync vouches for nothing.
            var incarnation = m.Incarnation ?? _incarnation;
            // The guest states are other files: their fsyncs overlap the store's own. Only the
            // record that says "prepared" must wait for both.
            var states = m.States is { Epochs.Count: > 0 } toSync ? Task.Run(() => MakeDurable(toSync)) : Task.FromResult<string?>(null);
            try
            {
                _gate.Run(incarnation, s =>
                {
                    s.DrainWriteAhead();
                    return s.PreparedEpoch;
                });
                _gate.FlushImageUnlocked(incarnation);
                if (states.GetAwaiter().GetResult() is { } error)
                {
                    _log.Error("checkpoint {0} not prepared: {1}", m.Epoch, error);
                    Sender.Tell(new StoreStatesNotDurable(m.Epoch, incarnation, error));
                    return;
                }
                _gate.Run(incarnation, s =>
                {
                    s.RecordPrepared(m.Epoch);
                    return s.PreparedEpoch;
                });
            }
            catch (StoreRewoundException e)
            {
                // The gate failed under this prepare (its store restarts: FailStore is on its way).
                _log.Warning("dropping prepare of checkpoint {0} for store incarnation {1}: {2}", m.Epoch, incarnation, e.Message);
                return;
            }
            Sender.Tell(new StorePrepared(m.Epoch, incarnation));
        });
        Receive<CommitStore>(m =>
        {
            _gate.Run(s =>
            {
                s.Commit(m.Epoch);
                return s.CommittedEpoch;
            });
            Sender.Tell(new StoreCommitted(m.Epoch));
        });
        Receive<RollbackStoreTo>(m =>
        {
            var (result, incarnation) = _gate.Rollback(m.Checkpoint);
            _incarnation = incarnation;
            var (committed, prepared) = _gate.Run(s => (s.CommittedEpoch, s.PreparedEpoch));
            _log.Info("store at {0} rolled back to checkpoint {1} ({2} logs, {3} blocks), incarnation {4}",
                _directory, m.Checkpoint, result.LogsApplied, result.BlocksRestored, incarnation);
            Sender.Tell(new StoreRolledBack(result));
            Context.Parent.Tell(new StoreReady(incarnation, committed, prepared, Recovered: false));
        });
        Receive<MarkStoreSynced>(m =>
        {
            _gate.Run(s =>
            {
                s.MarkSynced(m.Epoch);
                return s.SyncedFrom;
            });
            _log.Info("store at {0} is in sync: it vouches for checkpoints from {1} on", _directory, m.Epoch);
            Sender.Tell(new StoreSynced(m.Epoch));
        });
        Receive<GetStoreStatus>(_ => Sender.Tell(_gate.Run(s =>
            new StoreStatus(s.CommittedEpoch, s.PreparedEpoch, s.LoggedEpochs, s.Counters, _incarnation))));
        Receive<FailStore>(m => System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(m.Cause));
        Receive<CrashStoreForTest>(m =>
        {
            _gate.Withdraw()?.Dispose();
            m.WhileClosed?.Invoke();
            throw m.Failure;
        });
    }
}
