using McActors.Storage.Rollback;

namespace McActors.Replication;

// The RollbackStoreActor's protocol (local only: never crosses nodes, so no IControlMessage).
// Writes do not appear here: they go through the StoreGate, without copies or mailbox hops.

/// <summary>
/// Make checkpoint <see cref="Epoch"/> durable. With <see cref="Incarnation"/> set, only if the
/// store is still the one that incarnation named: after a restart or a rollback, the writes the
/// requester counted on may be gone, so a stale request is dropped (and logged), not executed.
/// <see cref="States"/>: guest-state files that must be durable too before the checkpoint is
/// recorded prepared; they are fsynced while the store makes its logs and image durable (other
/// files: nothing orders them), instead of before.
/// </summary>
public sealed record PrepareStore(long Epoch, long? Incarnation = null, GuestStatesToSync? States = null);

/// <summary>The guest states of checkpoints <see cref="Epochs"/>, in <see cref="Files"/>, to make durable with a prepare.</summary>
public sealed record GuestStatesToSync(GuestStateFiles Files, IReadOnlyList<long> Epochs);

/// <summary>
/// Store actor → parent: the guest states of the prepare of checkpoint <see cref="Epoch"/> could not be made
/// durable (an I/O error), so it was not recorded prepared; the checkpoint cannot be vouched for.
/// </summary>
public sealed record StoreStatesNotDurable(long Epoch, long Incarnation, string Reason);

/// <summary>
/// Checkpoint <see cref="Epoch"/> is durable in store incarnation <see cref="Incarnation"/>. One of
/// an older incarnation is stale: a rollback since undid what it made durable.
/// </summary>
public sealed record StorePrepared(long Epoch, long Incarnation);

/// <summary>Mark checkpoint <see cref="Epoch"/> committed and drop the logs up to it.</summary>
public sealed record CommitStore(long Epoch);

/// <summary>Checkpoint <see cref="Epoch"/> is committed in the store (also the answer to a repeated commit).</summary>
public sealed record StoreCommitted(long Epoch);

/// <summary>Bring the image back to checkpoint <see cref="Checkpoint"/>.</summary>
public sealed record RollbackStoreTo(long Checkpoint);

/// <summary>The image is at the checkpoint.</summary>
public sealed record StoreRolledBack(RollbackResult Result);

/// <summary>Answer with a <see cref="StoreStatus"/>.</summary>
public sealed record GetStoreStatus
{
    public static readonly GetStoreStatus Instance = new();
}

public sealed record StoreStatus(long Committed, long Prepared, IReadOnlyList<long> LoggedEpochs, StoreCounters Counters, long Incarnation);

/// <summary>
/// Store actor → parent, after every open (first start, restart) and every rollback: the store
/// is published in the gate as <see cref="Incarnation"/>, its image is exactly checkpoint
/// <see cref="Prepared"/> (an unprepared tail found on open was rolled back).
/// </summary>
public sealed record StoreReady(long Incarnation, long Committed, long Prepared, bool Recovered)
{
    /// <summary>Set when the store was opened for a resync: the chunk hashes of the image it kept (before any write).</summary>
    public ResyncDigest? Digest { get; init; }
}

/// <summary>An image's chunk hashes: <see cref="Hashes"/> holds 16 bytes (XxHash128, little-endian) per chunk of <see cref="ChunkBytes"/>.</summary>
public sealed record ResyncDigest(int ChunkBytes, byte[] Hashes);

/// <summary>The resync is complete: from checkpoint <see cref="Epoch"/> on, the image is the primary's (made durable in the store state).</summary>
public sealed record MarkStoreSynced(long Epoch);

/// <summary>The store vouches for checkpoints from <see cref="Epoch"/> on.</summary>
public sealed record StoreSynced(long Epoch);

/// <summary>Crash-test hook: close the store, run <see cref="WhileClosed"/> (damage files), then throw <see cref="Failure"/>.</summary>
internal sealed record CrashStoreForTest(Exception Failure, Action? WhileClosed = null);

/// <summary>
/// Secondary → store actor: the store failed on the write path (outside this actor); fail here with
/// the same cause, so the supervisor decides as for any store failure (a restart reopens the store).
/// </summary>
public sealed record FailStore(Exception Cause);
