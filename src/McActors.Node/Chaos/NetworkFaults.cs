using System.Diagnostics;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Chaos;

/// <summary>
/// Chaos faults that are real network partitions: the run's nodes each live in a network
/// namespace (<see cref="NetworkNamespaces"/>, root only) and the fault is iptables DROP rules,
/// so the node keeps running and talking to whoever it still reaches; unlike SIGSTOP
/// (<see cref="ChaosFault.PartitionPrimary"/>) its timers, its SBR and its clients go on. A run
/// uses namespaces only when it draws one of these, so users without root keep every other fault.
/// The host's connections to an isolated node's NBD port stay open: its client still reaches it.
/// After the fault: heal, every node the cluster downed must exit with code 3, and is restarted
/// with its data directory to be re-protected; ChaosChecks' invariants then run as for any fault.
/// </summary>
public static class NetworkFaults
{
    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan DownTimeout = ChaosRecovery.DownTimeout;
    private static readonly TimeSpan ResyncStartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MemberUpTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan FlapFor = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan RestartUpTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Flapping cuts: around Akka's failure detection (600 ms acceptable pause) on both sides, so some are noticed and some not.</summary>
    private static readonly (TimeSpan, TimeSpan) FlapCut = (TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(1200));
    private static readonly (TimeSpan, TimeSpan) FlapHealed = (TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(1500));
    private static readonly TimeSpan Poll = ChaosRecovery.Poll;

    public static IReadOnlyList<ChaosFault> All { get; } =
    [
        ChaosFault.PartitionPrimaryNet,
        ChaosFault.PartitionCoordinatorMinority,
        ChaosFault.OneWayPrimaryInbound,
        ChaosFault.OneWayPrimaryOutbound,
        ChaosFault.FlappingPrimaryLink,
        ChaosFault.CutDuringResync,
    ];

    public static bool Is(ChaosFault fault) => All.Contains(fault);

    /// <summary>The fault's victim is the primary (the others aim at a secondary).</summary>
    public static bool TargetsPrimary(ChaosFault fault) =>
        fault is ChaosFault.PartitionPrimaryNet or ChaosFault.PartitionCoordinatorMinority or ChaosFault.OneWayPrimaryInbound or ChaosFault.OneWayPrimaryOutbound;

    /// <summary>
    /// Replicas a run of <paramref name="fault"/> needs: the coordinator-minority cut puts the arbiter
    /// and the primary on one side, a minority of voters only beside 3 replicas (the arbiter votes
    /// beside an even number, and 2 of 3 voters would be the majority).
    /// </summary>
    public static int Replicas(ChaosFault fault, int drawn) => fault == ChaosFault.PartitionCoordinatorMinority ? 3 : drawn;

    /// <summary>Cuts the network as the plan says; returns the instant the fault began.</summary>
    public static async Task<DateTime> InjectAsync(ChaosPlan plan, LocalCluster.LocalCluster cluster, StatusTracker tracker,
        ChaosObservations seen, string target, CancellationToken cancel)
    {
        var net = NetworkOf(cluster);
        var primary = seen.PrimaryBefore;
        switch (plan.Fault)
        {
            case ChaosFault.PartitionPrimaryNet or ChaosFault.OneWayPrimaryInbound or ChaosFault.OneWayPrimaryOutbound:
                var direction = plan.Fault switch
                {
                    ChaosFault.OneWayPrimaryInbound => CutDirection.Inbound,
                    ChaosFault.OneWayPrimaryOutbound => CutDirection.Outbound,
                    _ => CutDirection.Both,
                };
                net.Isolate(primary, direction, hostPorts: NbdPorts(cluster, primary));
                return DateTime.UtcNow;
            case ChaosFault.PartitionCoordinatorMinority:
            {
                var minority = Minority(cluster, primary);
                seen.Victims.AddRange(minority);
                seen.Notes.Add($"minority [{string.Join(", ", minority)}]");
                foreach (var name in minority)
                    net.Isolate(name, CutDirection.Both, keep: minority, hostPorts: NbdPorts(cluster, name));
                return DateTime.UtcNow;
            }
            case ChaosFault.FlappingPrimaryLink:
            {
                var at = DateTime.UtcNow;
                var schedule = await net.FlapAsync(primary, target, new Random(unchecked((int)plan.Seed)), FlapFor, FlapCut, FlapHealed, cancel);
                seen.Notes.Add($"{schedule.Count} cuts {primary}-{target}, longest {schedule.Max(c => c.Length).TotalSeconds:0.0} s");
                return at;
            }
            case ChaosFault.CutDuringResync:
                return await CutDuringResyncAsync(cluster, tracker, seen, target, cancel);
            default:
                throw new ArgumentException($"{ChaosPlan.NameOf(plan.Fault)} is not a network fault");
        }
    }

    /// <summary>From the cut until every node is back: a result if the run already failed, null to go on with the runner's progress and invariant checks.</summary>
    public static async Task<ChaosResult?> RecoverAsync(ChaosPlan plan, LocalCluster.LocalCluster cluster, StatusTracker tracker,
        ChaosObservations seen, System.Diagnostics.Stopwatch clock, CancellationToken cancel)
    {
        var net = NetworkOf(cluster);
        var target = seen.Target;
        // The nodes that must have been downed by the majority (exit code 3 after the heal).
        List<string> victims = plan.Fault switch
        {
            ChaosFault.PartitionCoordinatorMinority => seen.Victims,
            ChaosFault.FlappingPrimaryLink => [],
            _ => [target],
        };
        if (TargetsPrimary(plan.Fault))
        {
            // A new generation with another primary. Its report comes from the coordinator that failed
            // over; when the decision was persisted by the minority's coordinator before it stopped, the
            // majority's recovers it from the journal and reports none (checked below as fencing).
            var done = await tracker.UntilAsync(
                s => s.Generation > seen.GenerationBefore && s.Primary is not null && s.Primary != target
                     && (s.LastFailover is { ResumedAt: not null } || s.LastFailover is null && s.LastCommitted > seen.CommittedBeforeFault),
                FailoverTimeout, Poll, cancel);
            if (done is null)
            {
                net.HealAll();
                return seen.Fail("failover", $"no failover from {target}, cut from the network, within {FailoverTimeout.TotalSeconds:0} s " +
                    $"(last: generation {tracker.Last?.Generation}, primary {tracker.Last?.Primary ?? "none"})", clock.Elapsed);
            }
            if (done.LastFailover is { } report)
                seen.Failover = ChaosRecovery.TimelineOf(cluster, seen, report, cluster.Node(target));
            else
                seen.Notes.Add($"generation {done.Generation} (primary {done.Primary}) recovered from the journal, not reported as a failover");
        }
        // The majority must down every victim before the cut heals: a node let back undowned would be a
        // member again with a stale view.
        foreach (var name in victims)
        {
            var node = cluster.Node(name);
            if (!await ChaosRecovery.UntilDownedAsync(cluster, node, cancel))
            {
                net.HealAll();
                return seen.Fail("(4)", $"{name}, cut from the network, was not downed within {DownTimeout.TotalSeconds:0} s", clock.Elapsed);
            }
        }
        net.HealAll();
        seen.Mark("fault", clock);

        // Healed: a downed node learns it (or already did, from its own resolver) and stops itself.
        foreach (var name in victims)
            await ChaosRecovery.CheckFencedExitAsync(cluster.Node(name), "cut off", "cut", seen.Problems);
        seen.Problems.AddRange(DecidedAfterDowned(cluster, victims));
        // A flapping link may get nodes downed too (both ends, as indirectly connected): any exit must be a downing.
        foreach (var node in cluster.Nodes.Where(n => n.HasExited && !victims.Contains(n.Options.Name)))
        {
            seen.Notes.Add($"{node.Options.Name} exited with code {node.ExitCode}");
            if (node.ExitCode != 3)
                seen.Problems.Add($"(4) {node.Options.Name} exited with code {node.ExitCode} after the network fault, not 3 (downed); see {node.LogPath}");
        }
        if (!TargetsPrimary(plan.Fault) && tracker.Last?.LastFailover is { } failover && failover.Generation > seen.GenerationBefore)
            seen.Failover = ChaosRecovery.TimelineOf(cluster, seen, failover, cluster.Node(seen.PrimaryBefore));

        // Every node that is down comes back with its data directory (the arbiter first: it holds no
        // replica); the replicas among them must be re-protected (invariant 5). One at a time, each
        // once the observer sees it Up, as on machines of their own: two .NET start-ups at once
        // starve this 2-core box's heartbeats for a second, and the resolver then downs a healthy
        // node as indirectly connected (seen in the 200-run campaign, partition-coordinator-minority).
        var restarted = new List<string>();
        foreach (var node in cluster.Nodes.Where(n => n.HasExited).OrderBy(n => n.Options.Kind != McActors.Hosting.NodeKind.Arbiter).ToList())
        {
            if (restarted.Count > 0)
            {
                var previous = cluster.Node(restarted[^1]).Options;
                await ChaosRecovery.UntilAsync(() => cluster.Observer.Membership.Of(previous.Host, previous.Port).UpAt is not null, RestartUpTimeout, cancel);
            }
            cluster.Observer.Membership.Forget(node.Options.Host, node.Options.Port);
            await cluster.RestartAsync(node.Options.Name);
            restarted.Add(node.Options.Name);
        }
        seen.Restarted = restarted.Count > 0 || plan.Fault == ChaosFault.CutDuringResync;
        var replicas = restarted.Where(r => cluster.Node(r).Options.Kind == McActors.Hosting.NodeKind.Replica).ToList();
        await ChaosRecovery.UntilReprotectedAsync(tracker, replicas, DateTime.UtcNow, cancel);
        var last = tracker.Last;
        seen.Reprotected = last is not null && (replicas.Count > 0 ? replicas.All(last.Secondaries.Contains) : last.Secondaries.Contains(target));
        if (restarted.Count > 0)
            seen.Notes.Add($"restarted [{string.Join(", ", restarted)}]");
        seen.Mark("rejoin", clock);
        return null;
    }

    /// <summary>
    /// Fencing, as the node logs show it: a coordinator on a downed node must decide nothing, yet
    /// the minority's coordinator, stopping after "Self downed", may still persist a failover to the
    /// shared journal (issue 10, section 2), which the majority's coordinator then recovers.
    /// </summary>
    private static IEnumerable<string> DecidedAfterDowned(LocalCluster.LocalCluster cluster, IEnumerable<string> victims)
    {
        foreach (var name in victims)
        {
            var node = cluster.Node(name);
            if (!File.Exists(node.LogPath))
                continue;
            var downed = false;
            foreach (var line in File.ReadLines(node.LogPath))
            {
                downed |= line.Contains("/user/coordinator] Self downed", StringComparison.Ordinal);
                if (downed && line.Contains("/user/coordinator/singleton]", StringComparison.Ordinal) && line.Contains("failing over to", StringComparison.Ordinal))
                {
                    yield return $"(fencing) the coordinator on {name} persisted a failover after its node was downed: {line[(line.IndexOf("primary ", StringComparison.Ordinal))..]}; see {node.LogPath}";
                    break;
                }
            }
        }
    }

    /// <summary>
    /// Kills the secondary, restarts it, and as soon as the coordinator reports it being resynced
    /// (re-protected by a background copy from the primary), cuts it from everything.
    /// </summary>
    private static async Task<DateTime> CutDuringResyncAsync(LocalCluster.LocalCluster cluster, StatusTracker tracker,
        ChaosObservations seen, string target, CancellationToken cancel)
    {
        var node = cluster.Node(target);
        cluster.Kill(target);
        await node.WaitForExitAsync(TimeSpan.FromSeconds(15));
        if (await tracker.UntilAsync(s => !s.Secondaries.Contains(target), DownTimeout, Poll, cancel) is null)
            throw new InvalidOperationException($"killed secondary {target} still in the replica set after {DownTimeout.TotalSeconds:0} s");
        await cluster.RestartAsync(target);
        var resyncing = await tracker.UntilAsync(s => s.Resyncing.Any(r => r.Replica == target) || s.Secondaries.Contains(target),
            ResyncStartTimeout, TimeSpan.FromMilliseconds(20), cancel);
        // On a loaded machine the fresh incarnation may have been downed already (late heartbeats):
        // then there is no resync to cut, and its downing is not the cut's.
        // The observer may see it Joining a moment longer than the coordinator did (gossip lag): wait for Up.
        var fresh = cluster.Node(target);
        var observer = Akka.Cluster.Cluster.Get(cluster.Observer.System);
        Akka.Cluster.Member? member = null;
        for (var waited = Stopwatch.StartNew(); ; await Task.Delay(20, cancel))
        {
            member = observer.State.Members.FirstOrDefault(m => m.Address.Host == fresh.Options.Host && m.Address.Port == fresh.Options.Port);
            if (fresh.HasExited || waited.Elapsed > MemberUpTimeout
                || member?.Status is Akka.Cluster.MemberStatus.Up or Akka.Cluster.MemberStatus.Down or Akka.Cluster.MemberStatus.Exiting or Akka.Cluster.MemberStatus.Removed)
                break;
        }
        if (fresh.HasExited || member?.Status != Akka.Cluster.MemberStatus.Up)
            throw new InvalidOperationException($"setup: restarted {target} is {(fresh.HasExited ? $"gone (exit code {fresh.ExitCode})" : $"not an Up member ({member?.Status.ToString() ?? "not a member"})")} before the cut; see {fresh.LogPath}");
        NetworkOf(cluster).Isolate(target, CutDirection.Both);
        var at = DateTime.UtcNow;
        seen.Notes.Add(resyncing switch
        {
            null => $"cut {target} before its resync was seen starting",
            _ when resyncing.Resyncing.FirstOrDefault(r => r.Replica == target) is { } r => $"cut {target} mid-resync ({r})",
            _ => $"cut {target} after its resync finished",
        });
        // The kill is part of the setup (the old incarnation was removed before the new one joined):
        // the downing of the restarted node is what is checked.
        cluster.Observer.Membership.Forget(node.Options.Host, node.Options.Port);
        return at;
    }

    /// <summary>The minority side of a coordinator-minority cut: the node hosting the coordinator singleton (the oldest) and the primary.</summary>
    private static List<string> Minority(LocalCluster.LocalCluster cluster, string primary)
    {
        var members = Akka.Cluster.Cluster.Get(cluster.Observer.System).State.Members.Where(m => m.HasRole("coordinator")).ToList();
        if (members.Count == 0)
            throw new InvalidOperationException("the observer sees no member that can host the coordinator");
        var oldest = members.Aggregate((a, b) => b.IsOlderThan(a) ? b : a);
        var host = cluster.Nodes.FirstOrDefault(n => n.Options.Host == oldest.Address.Host && n.Options.Port == oldest.Address.Port)
            ?? throw new InvalidOperationException($"the coordinator's node {oldest.Address} is none of the cluster's");
        if (host.Options.Votes && host.Options.Name != primary)
            throw new InvalidOperationException($"the coordinator runs on {host.Options.Name}, a voter: with the primary it would be the majority, not the minority");
        return host.Options.Name == primary ? [primary] : [host.Options.Name, primary];
    }

    private static NetworkNamespaces NetworkOf(LocalCluster.LocalCluster cluster) =>
        cluster.Network ?? throw new InvalidOperationException("a network fault needs the cluster's nodes in network namespaces (LocalClusterOptions.Netns)");

    /// <summary>The node's NBD port, which its clients on the host keep reaching through a cut.</summary>
    private static int[] NbdPorts(LocalCluster.LocalCluster cluster, string name) =>
        cluster.Node(name).Options.Nbd is { } nbd ? [int.Parse(nbd[(nbd.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)] : [];
}
