using McActors.Protocol;

namespace McActors.Checkpointing;

// The coordinator's journal: what must survive a restart or a singleton move. ActorRefs are not
// here on purpose: replicas re-register with the coordinator that runs now. Events and the
// snapshot go through CoordinatorJournalSerializer (JSON under versioned manifests): collections are
// plain arrays, because `[.. x]` into an IReadOnlyList makes a compiler-generated type that JSON
// cannot read back.

/// <summary>An event in the coordinator's journal (persistence id <c>mcactors-coordinator</c>).</summary>
public interface ICoordinatorEvent;

/// <summary>The volume was decided, once, from the settings of the first coordinator.</summary>
public sealed record VolumeCreated(VolumeSpec Volume) : ICoordinatorEvent;

/// <summary>
/// Generation <see cref="Generation"/> starts with these roles (the first, or after a failover).
/// <see cref="PrimaryAddress"/> is the primary's node (Akka address), so that a coordinator that
/// moved can tell at once whether that node is still in the cluster.
/// </summary>
public sealed record RolesAssigned(long Generation, string Primary, string[] Secondaries, string? PrimaryAddress = null) : ICoordinatorEvent;

/// <summary>
/// Checkpoint <see cref="Epoch"/> is committed (the 2PC decision point), prepared by
/// <see cref="Secondaries"/> secondaries (what every Commit of it says; 0 in journals written
/// before it was recorded, so that a resent Commit never claims more than is known).
/// </summary>
public sealed record CheckpointCommitted(long Generation, long Epoch, long Writes, long Bytes, int Secondaries = 0) : ICoordinatorEvent;

/// <summary>
/// A replica joined the replica set as a secondary (a resync finished): its image is the
/// primary's from checkpoint <see cref="Epoch"/> on, and it takes part in the checkpoints from
/// <see cref="CountsFrom"/> on (the first opened after it joined; 0 in journals written before it
/// was recorded: then <see cref="Epoch"/>). <see cref="ResyncAttempt"/> is the resync that made it a
/// member (null in journals written before it was recorded).
/// </summary>
public sealed record SecondaryAdded(long Generation, string Replica, long Epoch, long CountsFrom = 0, long? ResyncAttempt = null) : ICoordinatorEvent;

/// <summary>
/// A secondary that joined the running generation takes part in its checkpoints from <see cref="CountsFrom"/> on;
/// it joined by resync attempt <see cref="ResyncAttempt"/> (null: not recorded).
/// </summary>
public sealed record SecondaryJoin(string Replica, long CountsFrom, long? ResyncAttempt = null);

/// <summary>
/// Coordinator incarnation <see cref="Incarnation"/> recovered the journal and appended this first,
/// before any decision. The journal refuses a second append of a sequence number (unique
/// persistence id and sequence number), so once this is written every older incarnation, whose
/// next sequence number is at most this one's, can append nothing more: it is fenced.
/// </summary>
public sealed record CoordinatorTookOver(long Incarnation, string? Node) : ICoordinatorEvent;

/// <summary>A secondary left the replica set at <see cref="Epoch"/> (slow, terminated or failed).</summary>
public sealed record SecondaryDropped(long Generation, string Replica, long Epoch, string Reason) : ICoordinatorEvent;

/// <summary>
/// The coordinator's persisted state as an immutable value; <see cref="Apply"/> is the only way it
/// changes, both live and on recovery, so the two can never disagree.
/// </summary>
public sealed record CoordinatorState(
    VolumeSpec? Volume,
    long Generation,
    string? Primary,
    string[] Secondaries,
    long LastCommitted,
    long CheckpointsCommitted,
    long WritesCommitted,
    long BytesCommitted)
{
    public static readonly CoordinatorState Empty = new(null, 0, null, [], 0, 0, 0, 0);

    /// <summary>The primary's node address when its roles were assigned (null in journals written before it was recorded).</summary>
    public string? PrimaryAddress { get; init; }

    /// <summary>Generations that began by replacing a primary.</summary>
    public long Failovers { get; init; }

    /// <summary>How many secondaries prepared checkpoint <see cref="LastCommitted"/> (what a resent Commit of it says).</summary>
    public int LastCommittedSecondaries { get; init; }

    /// <summary>The secondaries that joined this generation by a resync, and the first checkpoint each takes part in.</summary>
    public SecondaryJoin[] Joined { get; init; } = [];

    /// <summary>The Commit of the last committed checkpoint, to repeat to a replica that comes back (null before the first).</summary>
    public Commit? LastCommit() => LastCommitted > 0 ? new Commit(Generation, LastCommitted, LastCommittedSecondaries) : null;

    /// <summary>
    /// The first checkpoint <paramref name="secondary"/> takes part in: where it joined, or 0 for
    /// one the generation started with. One that joined after <see cref="LastCommitted"/> was
    /// opened cannot vouch for it (it never prepared it, and its image may be the primary's only
    /// from a later checkpoint): it is no failover target.
    /// </summary>
    public long CountsFrom(string secondary) => Joined.FirstOrDefault(j => j.Replica == secondary)?.CountsFrom ?? 0;

    /// <summary>
    /// The resync attempt that made <paramref name="secondary"/> a member of this generation: 0 for
    /// one the generation started with, null if it joined before attempts were recorded.
    /// </summary>
    public long? MembershipOf(string secondary) =>
        Joined.FirstOrDefault(j => j.Replica == secondary) is { } join ? join.ResyncAttempt : 0;

    /// <summary>How many coordinators have taken over the journal (the last one's <see cref="CoordinatorTookOver.Incarnation"/>).</summary>
    public long Incarnation { get; init; }

    public bool HasRoles => Primary is not null;

    public bool IsMember(string replica) => replica == Primary || Secondaries.Contains(replica);

    public CoordinatorState Apply(ICoordinatorEvent e) => e switch
    {
        VolumeCreated v => this with { Volume = v.Volume },
        CoordinatorTookOver t => this with { Incarnation = Math.Max(Incarnation, t.Incarnation) },
        RolesAssigned r => this with
        {
            Generation = r.Generation,
            Primary = r.Primary,
            Secondaries = r.Secondaries.ToArray(),
            PrimaryAddress = r.PrimaryAddress,
            Failovers = Failovers + (Primary is null ? 0 : 1),
            Joined = [], // a new generation's secondaries take part in all of its checkpoints
        },
        // Commits arrive in order; a replayed older one (never expected) must not move LastCommitted back.
        CheckpointCommitted c when c.Generation == Generation && c.Epoch > LastCommitted => this with
        {
            LastCommitted = c.Epoch,
            CheckpointsCommitted = CheckpointsCommitted + 1,
            WritesCommitted = WritesCommitted + c.Writes,
            BytesCommitted = BytesCommitted + c.Bytes,
            LastCommittedSecondaries = c.Secondaries,
        },
        CheckpointCommitted => this,
        SecondaryDropped d when d.Generation == Generation => this with
        {
            Secondaries = Secondaries.Where(s => s != d.Replica).ToArray(),
            Joined = Joined.Where(j => j.Replica != d.Replica).ToArray(),
        },
        SecondaryDropped => this,
        SecondaryAdded a when a.Generation == Generation && !IsMember(a.Replica) => this with
        {
            Secondaries = [.. Secondaries, a.Replica],
            Joined = [.. Joined.Where(j => j.Replica != a.Replica), new SecondaryJoin(a.Replica, a.CountsFrom > 0 ? a.CountsFrom : a.Epoch, a.ResyncAttempt)],
        },
        SecondaryAdded => this,
        _ => throw new ArgumentException($"unknown coordinator event {e.GetType().Name}", nameof(e)),
    };
}
