using McActors.Storage.Io;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

// RollbackStore: getting a store onto a directory (create, resync, attach, recover) and what can be
// done to a directory no store has open (read its checkpoints, detach it).
public sealed partial class RollbackStore
{
    /// <summary>Creates a store with a new sparse image of the descriptor's size, at checkpoint 0.</summary>
    public static RollbackStore Create(string directory, VolumeDescriptor descriptor, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        descriptor.Validate();
        System.IO.Directory.CreateDirectory(directory);
        if (File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)))
            throw new IOException($"a store already exists in {directory}");
        System.IO.Directory.CreateDirectory(Path.Combine(directory, LogDirectoryName));
        var image = VolumeImage.Create(Path.Combine(directory, ImageFileName), descriptor.SizeBytes);
        var state = StoreStateFile.Create(directory, new StoreState(0, 0, 0, 0));
        descriptor.Save(directory); // last: a directory without a descriptor is not a store
        return new RollbackStore(directory, descriptor, image, state, options);
    }

    /// <summary>
    /// Opens <paramref name="directory"/> to be resynced from the primary. Keeps its image when its
    /// descriptor matches <paramref name="descriptor"/> (id, size, block size) and the image has
    /// that size, so that only the chunks that differ need copying; else starts from a new sparse
    /// (zero) image. Drops every rollback log and the old state, then persists a state that says
    /// "resync in progress" (<see cref="SyncedFrom"/> = <see cref="long.MaxValue"/>), durable
    /// before this returns. The store then takes writes of any epoch &gt; 0, copy-before-write as
    /// usual; <see cref="MarkSynced"/> ends the resync.
    /// <para>
    /// Crash-safe: the state file goes first (a directory without one is refused by
    /// <see cref="Recover"/>), the new state comes last, and until <see cref="MarkSynced"/> it
    /// makes <see cref="Recover"/> throw <see cref="ResyncIncompleteException"/>: a crash at any
    /// instant leaves a store that knows it must resync again. No store may be open on the
    /// directory meanwhile.
    /// </para>
    /// </summary>
    public static RollbackStore OpenForResync(string directory, VolumeDescriptor descriptor, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        descriptor.Validate();
        System.IO.Directory.CreateDirectory(directory);
        StoreDirectory.RemoveStateAndLogs(directory);
        var imagePath = Path.Combine(directory, ImageFileName);
        var keep = StoreDirectory.HoldsVolume(directory, descriptor, imagePath);
        if (!keep)
        {
            // Descriptor first: a directory without one is not a store, whatever else it holds.
            File.Delete(Path.Combine(directory, VolumeDescriptor.FileName));
            File.Delete(imagePath);
            Durability.SyncDirectory(directory);
        }
        VolumeImage? image = null;
        StoreStateFile? state = null;
        try
        {
            image = keep ? VolumeImage.Open(imagePath, descriptor.SizeBytes) : VolumeImage.Create(imagePath, descriptor.SizeBytes);
            if (!keep)
                descriptor.Save(directory);
            // Create writes, fsyncs the file and then the directory: durable before we return.
            state = StoreStateFile.Create(directory, new StoreState(0, 0, 0, 0, StoreState.ResyncInProgress));
            return new RollbackStore(directory, descriptor, image, state, options);
        }
        catch
        {
            state?.Dispose();
            image?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Turns the image in <paramref name="directory"/> back into a store at checkpoint
    /// <paramref name="checkpoint"/>: for a primary left alone, whose image is exactly that checkpoint
    /// when this is called (its guest paused after the epoch's last write), so that it can keep its
    /// own rollback logs from then on. fsyncs the image, drops any old state and logs, then persists
    /// a state that vouches for <paramref name="checkpoint"/> only (committed, prepared and synced
    /// from it: nothing older can be rolled back to). Crash-safe: the state comes last, and without it
    /// the directory is a detached image. No store may be open on the directory meanwhile.
    /// </summary>
    public static RollbackStore AttachAt(string directory, VolumeDescriptor descriptor, long checkpoint, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        descriptor.Validate();
        ArgumentOutOfRangeException.ThrowIfNegative(checkpoint);
        var imagePath = Path.Combine(directory, ImageFileName);
        if (!StoreDirectory.HoldsVolume(directory, descriptor, imagePath))
            throw new StoreMetadataCorruptException(Path.Combine(directory, VolumeDescriptor.FileName),
                $"no image of volume {descriptor.VolumeId} ({descriptor.SizeBytes} B) to attach a store to in {directory}");
        StoreDirectory.RemoveStateAndLogs(directory);
        VolumeImage? image = null;
        StoreStateFile? state = null;
        try
        {
            image = VolumeImage.Open(imagePath, descriptor.SizeBytes);
            image.Faults = options.Faults;
            image.Flush(); // the checkpoint's writes are durable before any state vouches for them
            state = StoreStateFile.Create(directory, new StoreState(checkpoint, checkpoint, 0, 0, checkpoint));
            return new RollbackStore(directory, descriptor, image, state, options);
        }
        catch
        {
            state?.Dispose();
            image?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The checkpoints a store directory that no one has open can vouch for, read from its state
    /// file alone: from the oldest it can roll back to (the later of committed and synced-from) to
    /// the newest prepared. Null when it can vouch for none: no store, detached, mid-resync, or a
    /// damaged state (what <see cref="Recover"/> would then refuse). Only a full recovery checks
    /// the logs, so this is what a replica reports, not a promise.
    /// </summary>
    public static (long Oldest, long Newest)? ReadCheckpoints(string directory)
    {
        if (!File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)) || !File.Exists(Path.Combine(directory, StoreStateFile.FileName)))
            return null;
        try
        {
            using var file = StoreStateFile.Open(directory);
            var s = file.State;
            if (s.SyncedFrom == StoreState.ResyncInProgress)
                return null;
            var oldest = Math.Max(s.Committed, s.SyncedFrom);
            return oldest <= s.Prepared ? (oldest, s.Prepared) : null;
        }
        catch (Exception e) when (e is IOException or CannotVouchException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Retires a store directory whose image its owner is about to write directly (a secondary
    /// promoted to primary): removes the state file (then fsyncs the directory), then every
    /// rollback log, and keeps the image and the descriptor. Afterwards <see cref="Recover"/>
    /// refuses the directory (<see cref="StoreDetachedException"/>); only <see cref="OpenForResync"/>
    /// can use it again, keeping the image. Crash-safe in that order: once the state is gone the
    /// logs are never applied. The store must be disposed first (or never opened).
    /// </summary>
    public static void Detach(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"no store directory {directory} to detach");
        StoreDirectory.RemoveStateAndLogs(directory);
    }

    /// <summary>
    /// Opens a store after a crash or a clean stop, rebuilding its state from the files: the
    /// committed and prepared checkpoints, every uncommitted log and its first-touch set. A torn
    /// record past a log's durable length (a crash mid-append) is cut off. Damage anywhere else
    /// throws a <see cref="CannotVouchException"/> and leaves every file as it was.
    /// </summary>
    public static RollbackStore Recover(string directory, RollbackStoreOptions? options = null)
    {
        options ??= new RollbackStoreOptions();
        options.Validate();
        var descriptor = VolumeDescriptor.Load(directory);
        if (!File.Exists(Path.Combine(directory, StoreStateFile.FileName)))
            throw new StoreDetachedException(directory);
        var logDirectory = Path.Combine(directory, LogDirectoryName);
        RecoveredLogs? logs = null;
        VolumeImage? image = null;
        StoreStateFile? state = null;
        try
        {
            image = VolumeImage.Open(Path.Combine(directory, ImageFileName), descriptor.SizeBytes);
            state = StoreStateFile.Open(directory);
            if (state.State.SyncedFrom == StoreState.ResyncInProgress)
                throw new ResyncIncompleteException(directory, null, state.State.SyncedFrom, "recovery");
            System.IO.Directory.CreateDirectory(logDirectory);
            logs = RecoveredLogs.Open(logDirectory, descriptor, state.State);
            var store = new RollbackStore(directory, descriptor, image, state, options)
            {
                Recovery = new RecoveryReport(state.State.Committed, state.State.Prepared,
                    [.. logs.Logs.Select(l => l.Epoch)], logs.Records, logs.Torn, logs.ToDelete.Count),
            };
            foreach (var log in logs.Logs)
            {
                store._logs.Add(log.Epoch, log);
                store._currentEpoch = Math.Max(store._currentEpoch, log.Epoch);
            }
            foreach (var path in logs.ToDelete)
                store._deleter.Enqueue(path);
            return store;
        }
        catch
        {
            logs?.CloseAll();
            state?.Dispose();
            image?.Dispose();
            throw;
        }
    }
}
