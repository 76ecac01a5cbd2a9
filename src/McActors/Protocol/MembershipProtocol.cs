using Akka.Actor;

namespace McActors.Protocol;

// Replicas and the coordinator: registration, role assignment, failure reports, status.
// Replica = the per-node ReplicaActor (/user/replica); coordinator = the EpochCoordinator
// singleton, reached through its proxy (/user/coordinator-proxy).

/// <summary>The volume every replica holds a copy of (decided once by the coordinator, persisted).</summary>
public sealed record VolumeSpec(Guid VolumeId, long SizeBytes, int BlockSize);

/// <summary>Where a secondary's data plane listens.</summary>
public sealed record SecondaryEndpoint(string ReplicaId, string Host, int Port);

/// <summary>
/// Replica → coordinator, resent every second: here I am, this is my store's state, and the role I
/// run (<see cref="Role"/> of <see cref="RoleGeneration"/>, null while none). A member of the
/// replica set that registers with no role has restarted: if it was the primary, its image holds
/// writes no checkpoint covers, so the coordinator fails over. <see cref="VolumeId"/> is null for
/// a replica with no image yet. <see cref="Nbd"/> is where the replica serves the volume over NBD
/// while it is primary (host:port), null if it does not. <see cref="Assuming"/> of
/// <see cref="AssumingGeneration"/> is the role it is changing into while no role runs (an
/// assignment taken, the old role stopping or the store rolling back for a promotion), null when
/// no change is under way: a primary that registers with no role but Assuming = Primary of the
/// current generation is mid-promotion, not restarted. <see cref="Committed"/>..<see cref="Prepared"/>
/// are the checkpoints its store's state file vouches for while no role runs (the oldest it can
/// roll back to, the newest prepared); 0, 0 when it vouches for none or a role runs.
/// </summary>
public sealed record RegisterReplica(
    string ReplicaId,
    IActorRef Replica,
    string DataPlaneHost,
    int DataPlanePort,
    Guid? VolumeId,
    long Committed,
    long Prepared,
    ReplicaRole? Role = null,
    long RoleGeneration = 0,
    string? Nbd = null,
    ReplicaRole? Assuming = null,
    long AssumingGeneration = 0) : IControlMessage;

/// <summary>
/// Coordinator → replica: registered; a role assignment follows when there is one for it.
/// <see cref="Primary"/> and <see cref="PrimaryNbd"/> say who is primary and where it serves NBD, as
/// far as the coordinator knows (null: no primary yet, or it serves no NBD), so that a replica can
/// send NBD clients there.
/// </summary>
public sealed record ReplicaRegistered(string ReplicaId, long Generation, string? Primary = null, string? PrimaryNbd = null) : IControlMessage;

/// <summary>
/// Coordinator → replica: be the primary of <see cref="Generation"/>, stream to these secondaries,
/// resume the guest after checkpoint <see cref="LastCommitted"/>.
/// </summary>
public sealed record AssignPrimary(
    long Generation,
    VolumeSpec Volume,
    IReadOnlyList<SecondaryEndpoint> Secondaries,
    long LastCommitted) : IFencedMessage;

/// <summary>
/// Coordinator → replica: be a secondary of <see cref="Generation"/>, following <see cref="PrimaryId"/>.
/// With <see cref="Resync"/>, the replica is joining a running generation: it keeps its image only
/// as a source of chunks that need no copy, and is brought in sync by the primary (ResyncProtocol.cs);
/// <see cref="ResyncAttempt"/> names this attempt in every message of it.
/// </summary>
public sealed record AssignSecondary(long Generation, VolumeSpec Volume, string PrimaryId, long LastCommitted, bool Resync = false,
    long ResyncAttempt = 0) : IFencedMessage;

/// <summary>Replica → coordinator: the assigned role runs (the primary's guest runs, the secondary listens).</summary>
public sealed record RoleAssumed(long Generation, string ReplicaId, ReplicaRole Role) : IFencedMessage;

/// <summary>
/// Promoted replica → coordinator: its image is checkpoint <see cref="Checkpoint"/> again (the
/// rollback undid <see cref="RolledBackEpochs"/> epochs: these blocks and bytes, in this time);
/// the primary starts on it now. <see cref="At"/> is UTC wall clock.
/// </summary>
public sealed record Promoted(
    long Generation,
    string ReplicaId,
    long Checkpoint,
    long RolledBackEpochs,
    long RolledBackBlocks,
    long RolledBackBytes,
    double RollbackMs,
    DateTime At) : IFencedMessage;

/// <summary>
/// Coordinator → the dropped secondary and the primary: <see cref="Replica"/> is out of the replica
/// set of <see cref="Generation"/> (<see cref="Reason"/>). The primary stops streaming to it (its
/// window must not hold the guest back, nor its logs and states pile up there); the secondary
/// stops its role and, registering with none, is resynced when the set has room.
/// <see cref="ResyncAttempt"/> names the membership that ended: the <see cref="AssignSecondary.ResyncAttempt"/>
/// that made the replica a member (0: it was a secondary from the generation's start; null: not known,
/// a journal written before it was recorded). A replica that has since been resynced back into the same
/// generation is a member by another attempt, and a late LeftReplicaSet about the earlier one leaves it alone.
/// </summary>
public sealed record LeftReplicaSet(long Generation, string Replica, string Reason, long? ResyncAttempt = null) : IFencedMessage;

/// <summary>Replica → coordinator: my role's actor stopped for good (its supervisor decided); drop me.</summary>
public sealed record ReplicaFailed(long Generation, string ReplicaId, string Reason) : IFencedMessage;

public enum ReplicaRole
{
    Primary,
    Secondary,
}

/// <summary>Anyone → coordinator: answer with <see cref="CoordinatorStatus"/>.</summary>
public sealed record GetCoordinatorStatus : IControlMessage
{
    public static readonly GetCoordinatorStatus Instance = new();
}

/// <summary>
/// Anyone → coordinator: forget the commit latencies measured so far, so that the percentiles of
/// later <see cref="CoordinatorStatus"/> answers describe only what follows (a benchmark's warm-up ends).
/// </summary>
public sealed record ResetCommitLatency : IControlMessage
{
    public static readonly ResetCommitLatency Instance = new();
}

/// <summary>
/// The coordinator's view: generation, roles, the checkpoint pipeline and commit latency
/// (CloseEpoch sent → Committed persisted) over the last status interval and since start.
/// </summary>
public sealed record CoordinatorStatus(
    long Generation,
    string? Primary,
    IReadOnlyList<string> Secondaries,
    long LastCommitted,
    int InFlight,
    long CheckpointsCommitted,
    long WritesCommitted,
    long BytesCommitted,
    double CommitP50Ms,
    double CommitP99Ms,
    bool Degraded) : IControlMessage
{
    /// <summary>Failovers since the volume was created (from the journal).</summary>
    public long Failovers { get; init; }

    /// <summary>The last failover's timeline, or null if none happened while this coordinator ran.</summary>
    public FailoverReport? LastFailover { get; init; }

    /// <summary>Replicas being re-protected (background copy from the primary) and how far each got.</summary>
    public IReadOnlyList<ResyncProgress> Resyncing { get; init; } = [];

    /// <summary>
    /// Secondaries that joined this generation by a resync, with the first checkpoint each takes
    /// part in: one cannot vouch for a checkpoint before it (it was never asked to prepare it).
    /// </summary>
    public IReadOnlyDictionary<string, long> JoinedFrom { get; init; } = new Dictionary<string, long>();

    /// <summary>The secondaries that took part in checkpoint <paramref name="epoch"/> (all but those that joined after it was opened).</summary>
    public IReadOnlyList<string> SecondariesOf(long epoch) => [.. Secondaries.Where(s => JoinedFrom.GetValueOrDefault(s) <= epoch)];
}

/// <summary>
/// One failover as the coordinator saw it. Times are UTC wall clock (the same clock as a local
/// caller's <see cref="DateTime.UtcNow"/>); a step not seen by this coordinator is null (for
/// example detection, when the coordinator itself moved).
/// </summary>
public sealed record FailoverReport(
    long Generation,
    string FromPrimary,
    string ToPrimary,
    long TargetCheckpoint,
    DateTime? DetectedAt,
    DateTime? DownedAt,
    DateTime PromotedAt,
    DateTime? RolledBackAt,
    DateTime? ResumedAt,
    long RolledBackEpochs,
    long RolledBackBlocks,
    long RolledBackBytes,
    double RollbackMs);

/// <summary>A replica being re-protected: <see cref="CopiedBytes"/> of <see cref="ScannedBytes"/> scanned differed and were sent.</summary>
public sealed record ResyncProgress(string Replica, long ScannedBytes, long TotalBytes, long CopiedBytes, bool Done);

/// <summary>
/// Anyone → coordinator: pause the guest for good and commit one last checkpoint covering all its
/// writes; answered with <see cref="GuestStopped"/> once that checkpoint is committed. The
/// coordinator forwards it to the primary (before the CloseEpoch of that last checkpoint), which
/// then does not resume the guest after that close.
/// </summary>
public sealed record StopGuest : IControlMessage
{
    public static readonly StopGuest Instance = new();
}

/// <summary>The guest is paused for good and checkpoint <see cref="Epoch"/> (committed) covers every write it made.</summary>
public sealed record GuestStopped(long Generation, long Epoch) : IControlMessage;
