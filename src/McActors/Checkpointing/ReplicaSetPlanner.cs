using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>A replica as the coordinator knows it from its RegisterReplica (in registration order).</summary>
public sealed record ReplicaCandidate(string ReplicaId, string Host, int Port, long RegistrationOrder, int? AgeRank = null);

/// <summary>
/// Who becomes what, as plain logic. The primary is the oldest cluster member among the
/// candidates when ages are known (an older member has survived longer, and it is the Split Brain
/// Resolver's tie-breaker too), else the first to register; the others are secondaries.
/// </summary>
public static class ReplicaSetPlanner
{
    /// <summary>The first roles, or null while fewer than <paramref name="replicas"/> candidates registered.</summary>
    public static RolesAssigned? PlanInitial(IReadOnlyCollection<ReplicaCandidate> candidates, int replicas, long currentGeneration)
    {
        if (replicas < 1)
            throw new ArgumentOutOfRangeException(nameof(replicas), replicas, "at least one replica is needed");
        if (candidates.Count < replicas)
            return null;
        var ordered = candidates
            .OrderBy(c => c.AgeRank ?? int.MaxValue)
            .ThenBy(c => c.RegistrationOrder)
            .Take(replicas)
            .ToList();
        return new RolesAssigned(currentGeneration + 1, ordered[0].ReplicaId, ordered.Skip(1).Select(c => c.ReplicaId).ToArray());
    }

    /// <summary>
    /// The new primary after the primary was lost: among the <paramref name="secondaries"/> that are
    /// registered (alive) and can vouch for <paramref name="lastCommitted"/>, the one that prepared
    /// the most (its store holds the newest checkpoints, so it can surely roll back to the last
    /// committed one), ties broken by cluster age (oldest first), then registration order. A
    /// secondary that joined by a resync after the last committed checkpoint was opened
    /// (<paramref name="countsFrom"/> &gt; <paramref name="lastCommitted"/>) never prepared it and
    /// may hold the primary's image only from a later checkpoint: it is neither the target nor kept
    /// (it is resynced when it registers again), however much it prepared. The other candidates
    /// stay secondaries. Null when none is alive and able.
    /// </summary>
    public static RolesAssigned? PlanFailover(IEnumerable<string> secondaries, IReadOnlyDictionary<string, ReplicaCandidate> registered,
        IReadOnlyDictionary<string, long> prepared, long currentGeneration, Func<string, string?> addressOf,
        long lastCommitted, Func<string, long> countsFrom)
    {
        var alive = secondaries.Where(registered.ContainsKey)
            .Where(s => countsFrom(s) <= lastCommitted)
            .Select(s => registered[s])
            .OrderByDescending(c => prepared.GetValueOrDefault(c.ReplicaId))
            .ThenBy(c => c.AgeRank ?? int.MaxValue)
            .ThenBy(c => c.RegistrationOrder)
            .ToList();
        if (alive.Count == 0)
            return null;
        return new RolesAssigned(currentGeneration + 1, alive[0].ReplicaId, alive.Skip(1).Select(c => c.ReplicaId).ToArray(), addressOf(alive[0].ReplicaId));
    }

    /// <summary>
    /// The failover of <paramref name="state"/>'s primary: the secondary that can take over
    /// (<see cref="PlanFailover(IEnumerable{string}, IReadOnlyDictionary{string, ReplicaCandidate}, IReadOnlyDictionary{string, long}, long, Func{string, string?}, long, Func{string, long})"/>),
    /// else, as the last resort, the primary itself from its own store if it vouches for the last
    /// committed checkpoint (<see cref="ReplicaRegistry.PrimaryCanComeBack"/>); null when neither can.
    /// </summary>
    public static RolesAssigned? PlanFailover(CoordinatorState state, ReplicaRegistry members, Func<string, string?> addressOf, DateTime now)
    {
        var alive = members.Alive();
        return PlanFailover(state.Secondaries, alive, members.PreparedBy, state.Generation, addressOf, state.LastCommitted, state.CountsFrom)
            ?? (members.PrimaryCanComeBack(state, now)
                ? PlanFailover([state.Primary!], alive, members.PreparedBy, state.Generation, addressOf, state.LastCommitted, _ => 0)
                : null);
    }

    /// <summary>The data-plane endpoints of <paramref name="secondaries"/> that are registered, in set order.</summary>
    public static IReadOnlyList<SecondaryEndpoint> Endpoints(IEnumerable<string> secondaries, IReadOnlyDictionary<string, ReplicaCandidate> registered) =>
        [.. secondaries
            .Where(registered.ContainsKey)
            .Select(s => new SecondaryEndpoint(s, registered[s].Host, registered[s].Port))];
}
