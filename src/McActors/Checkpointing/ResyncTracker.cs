using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>How a resync message relates to the resync under way (<see cref="ResyncTracker.Check"/>).</summary>
public enum ResyncCheck
{
    /// <summary>No resync of that replica is under way: the message changes nothing.</summary>
    NotUnderWay,

    /// <summary>It is about the attempt under way.</summary>
    Current,

    /// <summary>It is about another (forgotten) attempt: it must change nothing.</summary>
    OtherAttempt,
}

/// <summary>
/// Re-protection as plain logic: which replicas are being resynced into the running generation, by
/// which attempt, how far each got and when it was last heard. Every message of an attempt carries
/// its id, so that an answer of a forgotten attempt (a late ResyncCompleted above all) changes nothing.
/// </summary>
public sealed class ResyncTracker
{
    private readonly Dictionary<string, (ResyncProgress Progress, DateTime HeardAt)> _resyncs = [];
    private readonly Dictionary<string, long> _attempts = [];
    private long _started;

    public IReadOnlyList<ResyncProgress> Progress => [.. _resyncs.Values.Select(r => r.Progress)];

    public bool IsUnderWay(string replica) => _resyncs.ContainsKey(replica);

    /// <summary>The attempt id of <paramref name="replica"/>'s resync (0 when none was started).</summary>
    public long AttemptOf(string replica) => _attempts.GetValueOrDefault(replica);

    /// <summary>
    /// A replica outside the replica set registered: true when the set of <paramref name="replicas"/>
    /// has room for it beside the members and the resyncs under way (then call <see cref="Start"/>).
    /// </summary>
    public bool HasRoom(CoordinatorState state, int replicas) => state.Secondaries.Length + _resyncs.Count < replicas - 1;

    /// <summary>
    /// Starts a resync of <paramref name="replica"/> and returns its attempt id, unique across
    /// coordinator incarnations too: a moved coordinator must not take an old attempt's answer for its own.
    /// </summary>
    public long Start(string replica, long incarnation, long volumeBytes, DateTime now)
    {
        _resyncs[replica] = (new ResyncProgress(replica, 0, volumeBytes, 0, false), now);
        var attempt = (incarnation << 32) + ++_started;
        _attempts[replica] = attempt;
        return attempt;
    }

    public ResyncCheck Check(string replica, long attempt) =>
        !_resyncs.ContainsKey(replica) ? ResyncCheck.NotUnderWay
        : _attempts.GetValueOrDefault(replica) == attempt ? ResyncCheck.Current
        : ResyncCheck.OtherAttempt;

    public void Heard(ResyncProgress progress, DateTime now) => _resyncs[progress.Replica] = (progress, now);

    /// <summary>Ends <paramref name="replica"/>'s resync (completed, failed, or the replica is gone); false when none was under way.</summary>
    public bool Remove(string replica) => _resyncs.Remove(replica);

    /// <summary>
    /// Forgets the resyncs that reported nothing for <paramref name="timeout"/> (a lost message, a
    /// joiner or connection that hung), so that the replica is tried again at its next registration
    /// and does not hold a place in the replica set forever.
    /// </summary>
    public IReadOnlyList<string> ForgetStalled(DateTime now, TimeSpan timeout)
    {
        var stalled = _resyncs.Where(kv => now - kv.Value.HeardAt > timeout).Select(kv => kv.Key).ToList();
        foreach (var replica in stalled)
            _resyncs.Remove(replica);
        return stalled;
    }

    /// <summary>A new generation: the copies were from the old primary; joiners register again.</summary>
    public void Clear() => _resyncs.Clear();
}
