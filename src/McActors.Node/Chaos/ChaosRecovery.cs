using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Chaos;

/// <summary>
/// The waits and checks that follow a fault, whether the runner (kills, SIGSTOP, store faults) or
/// <see cref="NetworkFaults"/> (iptables cuts) injected it: the victim downed before it is let back,
/// its fenced exit after, and its re-protection once restarted.
/// </summary>
internal static class ChaosRecovery
{
    public static readonly TimeSpan DownTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan FencedExitTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan ReprotectNotStarted = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan ReprotectTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    /// <summary>Whether the observer saw <paramref name="node"/> downed (or removed) within <see cref="DownTimeout"/>.</summary>
    public static Task<bool> UntilDownedAsync(LocalCluster.LocalCluster cluster, LocalNodeProcess node, CancellationToken cancel) =>
        UntilAsync(() => cluster.Observer.Membership.Of(node.Options.Host, node.Options.Port) is { DownedAt: not null } or { RemovedAt: not null },
            DownTimeout, cancel);

    /// <summary>The timeline of <paramref name="report"/>'s failover from the fault, filled in with what the observer saw of <paramref name="failed"/>.</summary>
    public static FailoverTimeline TimelineOf(LocalCluster.LocalCluster cluster, ChaosObservations seen, FailoverReport report, LocalNodeProcess failed) =>
        FailoverTimeline.From(seen.FaultAt, report, cluster.Observer.Membership.Of(failed.Options.Host, failed.Options.Port));

    /// <summary>
    /// After the heal a downed node must notice and stop itself (exit code 3), so that it can never act
    /// in a generation it is not part of; <paramref name="cut"/> and <paramref name="fault"/> word the problem.
    /// </summary>
    public static async Task CheckFencedExitAsync(LocalNodeProcess node, string cut, string fault, ICollection<string> problems)
    {
        var name = node.Options.Name;
        if (!await node.WaitForExitAsync(FencedExitTimeout))
            problems.Add($"(4) {name} was downed while {cut} but still runs {FencedExitTimeout.TotalSeconds:0} s after the {fault} healed");
        else if (node.ExitCode != 3)
            problems.Add($"(4) {name}, downed while {cut}, exited with code {node.ExitCode}, not 3 (downed)");
    }

    /// <summary>
    /// Waits (bounded) for every one of <paramref name="replicas"/>, restarted at <paramref name="restartedAt"/>,
    /// to be a secondary again; gives up early when none of them is being resynced a while after the restart.
    /// </summary>
    public static async Task UntilReprotectedAsync(StatusTracker tracker, IReadOnlyCollection<string> replicas,
        DateTime restartedAt, CancellationToken cancel) =>
        await tracker.UntilAsync(s =>
            replicas.All(s.Secondaries.Contains)
            || (!s.Resyncing.Any(r => replicas.Contains(r.Replica)) && DateTime.UtcNow - restartedAt > ReprotectNotStarted)
            || DateTime.UtcNow - restartedAt > ReprotectTimeout, ReprotectTimeout + TimeSpan.FromSeconds(1), Poll, cancel);

    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout, CancellationToken cancel)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            await Task.Delay(Poll, cancel);
        }
        return true;
    }
}
