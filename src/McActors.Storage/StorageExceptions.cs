namespace McActors.Storage;

/// <summary>Base of every error the storage engine raises on its own account.</summary>
public class StorageException : Exception
{
    public StorageException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// The store cannot prove that its image can be brought back to a checkpoint: a rollback log,
/// the volume descriptor or the store state is damaged or missing. The replica must resync;
/// it must never promote with this image. Nothing on disk was changed by the call that threw.
/// </summary>
public class CannotVouchException : StorageException
{
    public CannotVouchException(string path, string message, Exception? inner = null)
        : base($"{message} ({path}); the image cannot be vouched for, a resync is required", inner) => Path = path;

    /// <summary>The file that showed the problem.</summary>
    public string Path { get; }
}

/// <summary>A rollback log's header is not a valid McActors rollback-log header.</summary>
public sealed class RollbackLogHeaderCorruptException(string path, string detail)
    : CannotVouchException(path, $"rollback log header is corrupt: {detail}");

/// <summary>A rollback log belongs to another volume.</summary>
public sealed class RollbackLogVolumeMismatchException(string path, Guid expected, Guid actual)
    : CannotVouchException(path, $"rollback log belongs to volume {actual}, this store holds volume {expected}")
{
    public Guid Expected { get; } = expected;
    public Guid Actual { get; } = actual;
}

/// <summary>A rollback log was written with another block size than the store's.</summary>
public sealed class RollbackLogBlockSizeMismatchException(string path, int expected, int actual)
    : CannotVouchException(path, $"rollback log has block size {actual} B, the store uses {expected} B")
{
    public int Expected { get; } = expected;
    public int Actual { get; } = actual;
}

/// <summary>A record inside the durable part of a rollback log fails its checksum.</summary>
public sealed class RollbackLogChecksumException(string path, long recordOffset, string detail)
    : CannotVouchException(path, $"rollback log record at byte {recordOffset} is corrupt: {detail}")
{
    public long RecordOffset { get; } = recordOffset;
}

/// <summary>A rollback log is shorter than the length it had made durable: records that protect image writes are gone.</summary>
public sealed class RollbackLogTruncatedException(string path, long length, long durableLength)
    : CannotVouchException(path, $"rollback log ends at byte {length} but {durableLength} bytes were made durable")
{
    public long Length { get; } = length;
    public long DurableLength { get; } = durableLength;
}

/// <summary>The store's own metadata (volume descriptor, state file, image size) is missing or damaged.</summary>
public sealed class StoreMetadataCorruptException(string path, string detail)
    : CannotVouchException(path, detail);

/// <summary>The checkpoint asked for cannot be produced by this store: it was committed past, or never prepared here.</summary>
public sealed class CheckpointUnavailableException(long checkpoint, long committed, long prepared, string reason)
    : StorageException($"cannot roll back to checkpoint {checkpoint}: {reason} (committed {committed}, prepared {prepared}); a resync is required")
{
    public long Checkpoint { get; } = checkpoint;
}

/// <summary>A caller broke the epoch protocol (a write into a closed epoch, a commit of an unprepared one).</summary>
public sealed class EpochOrderException(string message) : InvalidOperationException(message);

/// <summary>
/// The store is being resynced from the primary, or was resynced from a checkpoint later than the
/// one asked for: its image is the primary's only from checkpoint <see cref="SyncedFrom"/> on
/// (<see cref="long.MaxValue"/>: the resync has not finished, or a crash interrupted it).
/// Nothing on disk was changed by the call that threw.
/// </summary>
public sealed class ResyncIncompleteException : CannotVouchException
{
    public ResyncIncompleteException(string directory, long? epoch, long syncedFrom, string operation)
        : base(directory, epoch is { } e
            ? $"{operation} of checkpoint {e} refused: the store holds the primary's image only from checkpoint {Describe(syncedFrom)}"
            : $"{operation} refused: the store's resync from the primary {(syncedFrom == long.MaxValue ? "never finished" : $"covers checkpoints from {syncedFrom} on")}")
    {
        Epoch = epoch;
        SyncedFrom = syncedFrom;
    }

    /// <summary>The checkpoint asked for; null when no checkpoint was asked (recovery).</summary>
    public long? Epoch { get; }

    /// <summary>The first checkpoint the store can vouch for; <see cref="long.MaxValue"/> while resyncing.</summary>
    public long SyncedFrom { get; }

    private static string Describe(long syncedFrom) =>
        syncedFrom == long.MaxValue ? "(none yet: the resync has not finished, synced from = never)" : $"{syncedFrom} on (synced from {syncedFrom})";
}

/// <summary>
/// The store directory has an image and a descriptor but no state: it was detached for promotion
/// to primary (its image written directly since), or a resync was interrupted before it started.
/// It can only be used again through <c>RollbackStore.OpenForResync</c>.
/// </summary>
public sealed class StoreDetachedException(string directory)
    : CannotVouchException(directory, "the store has no state file: it was detached (promoted to primary) or its resync never started; open it for resync");
