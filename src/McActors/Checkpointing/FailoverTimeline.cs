using Akka.Actor;
using McActors.Protocol;

namespace McActors.Checkpointing;

/// <summary>
/// The last failover's timeline as plain logic (for status and FailoverCompleted): when the old
/// primary's node was seen unreachable and downed (from cluster events), when the new generation
/// was decided, when the new primary rolled back (its Promoted report) and when it resumed.
/// </summary>
public sealed class FailoverTimeline
{
    private readonly Dictionary<Address, DateTime> _unreachableAt = [];
    private readonly Dictionary<Address, DateTime> _downedAt = [];

    /// <summary>The last failover this coordinator saw, or null.</summary>
    public FailoverReport? Last { get; private set; }

    public void Unreachable(Address node, DateTime now) => _unreachableAt.TryAdd(node, now);

    public void Reachable(Address node) => _unreachableAt.Remove(node);

    public void Downed(Address node, DateTime now) => _downedAt.TryAdd(node, now);

    /// <summary>A node removed never becomes reachable again; a new one may come back at its address.</summary>
    public void Removed(Address node, DateTime now)
    {
        _downedAt.TryAdd(node, now);
        _unreachableAt.Remove(node);
    }

    public bool IsUnreachable(string? node) => node is not null && _unreachableAt.ContainsKey(Address.Parse(node));

    /// <summary>When the node <paramref name="node"/> (a primary being lost) was seen unreachable and downed, as far as known now.</summary>
    public (DateTime? DetectedAt, DateTime? DownedAt) SeenLost(string? node)
    {
        if (node is null)
            return (null, null);
        var address = Address.Parse(node);
        return (_unreachableAt.TryGetValue(address, out var u) ? u : null, _downedAt.TryGetValue(address, out var d) ? d : null);
    }

    /// <summary>
    /// Generation <paramref name="generation"/> replaces <paramref name="from"/> by <paramref name="to"/>;
    /// <paramref name="seen"/> is <see cref="SeenLost"/> at the decision (a node removed meanwhile forgets its detection).
    /// </summary>
    public FailoverReport Started(long generation, string from, string to, long target, (DateTime? DetectedAt, DateTime? DownedAt) seen, DateTime now)
    {
        Last = new FailoverReport(generation, from, to, target, seen.DetectedAt, seen.DownedAt ?? now, now, null, null, 0, 0, 0, 0);
        return Last;
    }

    /// <summary>The new primary's rollback report; null (nothing changed) unless it is about the last failover's new primary.</summary>
    public FailoverReport? Promoted(Promoted p)
    {
        if (Last is not { } f || f.Generation != p.Generation || f.ToPrimary != p.ReplicaId)
            return null;
        Last = f with
        {
            RolledBackAt = p.At,
            RolledBackEpochs = p.RolledBackEpochs,
            RolledBackBlocks = p.RolledBackBlocks,
            RolledBackBytes = p.RolledBackBytes,
            RollbackMs = p.RollbackMs,
        };
        return Last;
    }

    /// <summary>The primary of <paramref name="generation"/> resumed the guest: the completed timeline if that ends the last failover, else null.</summary>
    public FailoverReport? Resumed(long generation, DateTime now)
    {
        if (Last is not { ResumedAt: null } f || f.Generation != generation)
            return null;
        Last = f with { ResumedAt = now };
        return Last;
    }

    /// <summary>Milliseconds from the first sign of the loss (detection, else downing, else the decision) to the resume.</summary>
    public static double OutageMs(FailoverReport f) => ((f.ResumedAt ?? f.PromotedAt) - (f.DetectedAt ?? f.DownedAt ?? f.PromotedAt)).TotalMilliseconds;
}
