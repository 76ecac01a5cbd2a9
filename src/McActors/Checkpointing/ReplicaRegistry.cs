using Akka.Actor;
using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>What one <see cref="RegisterReplica"/> means to the coordinator (<see cref="ReplicaRegistry.Record"/>).</summary>
/// <param name="NewRef">The replica registered from a ref this coordinator did not know it by (a restart or move of either).</param>
/// <param name="Replaced">The replica's previous ref, to stop watching; null when there was none or it is the same.</param>
/// <param name="Verdict">What the registration says about the replica set.</param>
public sealed record Registration(bool NewRef, IActorRef? Replaced, RegistrationVerdict Verdict);

public enum RegistrationVerdict
{
    /// <summary>Nothing to do but acknowledge it (no roles yet, not a member, or a ref already known).</summary>
    Acknowledge,

    /// <summary>A member came back from a new ref: repeat its assignment and the last Commit.</summary>
    MemberRejoined,

    /// <summary>
    /// The running primary registered from a new ref with no role and no promotion under way: it
    /// restarted, and its image holds writes no checkpoint covers. Fail over.
    /// </summary>
    PrimaryRestarted,
}

/// <summary>
/// The coordinator's membership as plain logic: who registered from which ref, with what data-plane
/// and NBD address, what each store vouches for and prepared, and whose promotion failed recently.
/// Nothing here is persisted: every replica registers again within a second, with a moved
/// coordinator too. The actor watches and sends; this decides.
/// </summary>
public sealed class ReplicaRegistry
{
    private readonly Dictionary<string, ReplicaCandidate> _registered = [];
    private readonly Dictionary<string, IActorRef> _refs = [];
    // Each replica's NBD address (host:port) from its last registration, to tell others where the primary serves.
    private readonly Dictionary<string, string> _nbd = [];
    // What the store of each replica that last registered with no role vouches for (RegisterReplica.Committed..Prepared).
    private readonly Dictionary<string, (long Oldest, long Newest, Guid? Volume)> _storeVouches = [];
    // A replica whose promotion failed (ReplicaFailed before RoleAssumed) is not promoted back from
    // its own store before RetryAfter: its registrations would repeat the same vouch, and each
    // retry persists a generation (a store whose state file reads fine but whose logs do not).
    private readonly Dictionary<string, (DateTime RetryAfter, TimeSpan Delay)> _failedPromotions = [];
    private readonly Dictionary<string, long> _preparedBy = [];
    private long _registrations;

    /// <summary>Every replica that registered (and, once roles exist, was not forgotten), in registration order.</summary>
    public IReadOnlyDictionary<string, ReplicaCandidate> Candidates => _registered;

    /// <summary>The newest checkpoint each replica prepared, as far as this coordinator heard.</summary>
    public IReadOnlyDictionary<string, long> PreparedBy => _preparedBy;

    public IActorRef? RefOf(string replica) => _refs.GetValueOrDefault(replica);

    public string? NbdOf(string? replica) => replica is null ? null : _nbd.GetValueOrDefault(replica);

    /// <summary>The candidates whose ref is alive (not terminated since they registered).</summary>
    public IReadOnlyDictionary<string, ReplicaCandidate> Alive() =>
        _registered.Where(kv => _refs.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>
    /// Records a registration (every one: replicas resend until they see the ack, and keep resending so
    /// that a moved coordinator hears from them) and judges it against <paramref name="state"/>.
    /// <paramref name="primaryRunning"/>: the primary of this generation ran (so one registering
    /// with no role restarted).
    /// </summary>
    public Registration Record(RegisterReplica r, int? ageRank, CoordinatorState state, bool primaryRunning)
    {
        var known = _refs.TryGetValue(r.ReplicaId, out var old);
        var newRef = !known || !old!.Equals(r.Replica);
        _refs[r.ReplicaId] = r.Replica;
        var order = _registered.TryGetValue(r.ReplicaId, out var candidate) ? candidate.RegistrationOrder : ++_registrations;
        _registered[r.ReplicaId] = new ReplicaCandidate(r.ReplicaId, r.DataPlaneHost, r.DataPlanePort, order, ageRank);
        if (r.Nbd is not null)
            _nbd[r.ReplicaId] = r.Nbd;
        else
            _nbd.Remove(r.ReplicaId);
        Prepared(r.ReplicaId, r.Prepared);
        if (r.Role is null && r.Prepared > 0)
            _storeVouches[r.ReplicaId] = (r.Committed, r.Prepared, r.VolumeId);
        else
            _storeVouches.Remove(r.ReplicaId);
        return new Registration(newRef, known && newRef ? old : null, Judge(r, newRef, state, primaryRunning));
    }

    private static RegistrationVerdict Judge(RegisterReplica r, bool newRef, CoordinatorState state, bool primaryRunning)
    {
        if (!state.HasRoles)
            return RegistrationVerdict.Acknowledge;
        if (r.ReplicaId == state.Primary && newRef && r.Role is null && primaryRunning && !IsPromotingToCurrentGeneration(r, state))
            return RegistrationVerdict.PrimaryRestarted;
        return state.IsMember(r.ReplicaId) && newRef ? RegistrationVerdict.MemberRejoined : RegistrationVerdict.Acknowledge;
    }

    /// <summary>
    /// The replica runs no role because it is being promoted into this generation's primary (its
    /// store rolls back to the last committed checkpoint): it never ran as this primary, so its
    /// image holds nothing uncovered, and failing it over would make a needless generation whose
    /// primary runs beside it until it hears of that generation.
    /// </summary>
    public static bool IsPromotingToCurrentGeneration(RegisterReplica r, CoordinatorState state) =>
        r.Role is null && r.Assuming == ReplicaRole.Primary && r.AssumingGeneration == state.Generation && r.ReplicaId == state.Primary;

    /// <summary>
    /// Forgets a terminated ref; returns the replica id it belonged to, if it is still current. Before
    /// roles exist the candidate goes too (it must register again to be counted).
    /// </summary>
    public string? Forget(IActorRef terminated, bool hasRoles)
    {
        var id = _refs.FirstOrDefault(kv => kv.Value.Equals(terminated)).Key;
        if (id is null)
            return null;
        _refs.Remove(id);
        if (!hasRoles)
            _registered.Remove(id);
        return id;
    }

    public void Prepared(string replica, long epoch)
    {
        if (epoch > _preparedBy.GetValueOrDefault(replica))
            _preparedBy[replica] = epoch;
    }

    /// <summary>A new generation: what was prepared past the last committed checkpoint is rolled back everywhere.</summary>
    public void RollBackPrepared(long lastCommitted)
    {
        foreach (var replica in _preparedBy.Keys.ToList())
            _preparedBy[replica] = Math.Min(_preparedBy[replica], lastCommitted);
    }

    /// <summary>
    /// The lost primary registered again with no role (it restarted), and its store vouches for the
    /// last committed checkpoint: it kept the checkpoints alone while no secondary did
    /// (PrimaryAloneCheckpoints), so it can be rolled back to that checkpoint and promoted again.
    /// The last resort of a failover: any secondary that can take over goes first.
    /// </summary>
    public bool PrimaryCanComeBack(CoordinatorState state, DateTime now) =>
        state.Primary is { } primary && _refs.ContainsKey(primary) && _storeVouches.TryGetValue(primary, out var v)
        && v.Volume == state.Volume?.VolumeId && v.Oldest <= state.LastCommitted && state.LastCommitted <= v.Newest
        && !(_failedPromotions.TryGetValue(primary, out var failed) && now < failed.RetryAfter);

    /// <summary>A promotion failed: the replica's own store is not tried again for a while, doubling from <paramref name="min"/> up to <paramref name="max"/>; returns the wait.</summary>
    public TimeSpan BackOffPromotion(string replica, TimeSpan min, TimeSpan max, DateTime now)
    {
        var delay = _failedPromotions.TryGetValue(replica, out var last) ? TimeSpan.FromTicks(Math.Min(last.Delay.Ticks * 2, max.Ticks)) : min;
        _failedPromotions[replica] = (now + delay, delay);
        return delay;
    }

    public void PromotionSucceeded(string replica) => _failedPromotions.Remove(replica);
}
