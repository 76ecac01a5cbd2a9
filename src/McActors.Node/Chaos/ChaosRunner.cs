using System.Diagnostics;
using McActors.Node.Chaos.Nbd;
using McActors.Node.Demo;
using McActors.Node.LocalCluster;
using McActors.Protocol;
using McActors.Replication;

namespace McActors.Node.Chaos;

/// <summary>What writes to the volume during a chaos run.</summary>
public enum ChaosClient
{
    /// <summary>The synthetic guest, checkpointed with the disk (it rolls back with it at a failover).</summary>
    Synthetic,

    /// <summary>A real NBD client outside the checkpoint that reconnects and resends (<see cref="NbdChaosClient"/>).</summary>
    Nbd,
}

/// <summary>Options of <c>chaos</c>.</summary>
/// <param name="Faults">The faults runs draw from (default: <see cref="NodeFaults.Available"/>); a seed replays only with the same list.</param>
public sealed record ChaosOptions(int Runs, long Seed, string DataDirectory, IReadOnlyList<string> Overrides, IReadOnlyList<ChaosFault>? Faults = null,
    ChaosClient Client = ChaosClient.Synthetic);

/// <summary>The outcome of one run: <see cref="Failure"/> names the invariant and what was seen; null when it passed.</summary>
/// <param name="Details">Every broken invariant the run found (the first is <see cref="Failure"/>).</param>
public sealed record ChaosResult(ChaosPlan Plan, string? Failure, string Summary, TimeSpan Elapsed, IReadOnlyList<string>? Details = null)
{
    public bool Passed => Failure is null;
}

/// <summary>
/// <c>chaos</c>: seeded runs, each one fault in a fresh local cluster (an arbiter and 2 or 3
/// replicas, 50 ms epochs, the synthetic guest running), then the DESIGN.md invariants checked as
/// far as they can be observed from outside (see <see cref="ChaosChecks"/>). A passed run's
/// directory (node logs, images) is deleted; a failed run's is kept and named.
/// </summary>
public static class ChaosRunner
{
    /// <summary>
    /// Settings of every chaos cluster, before the user's --set. Shorter than the defaults where
    /// only start-up or waiting time is at stake: a failed join retried after 1 s instead of 5, a
    /// 64 MiB volume (verification reads it all), secondaries that hang left out of a new
    /// generation after 2 s. Failure detection and the resolver's stable-after stay as configured:
    /// they are what is being tested.
    /// </summary>
    public static IReadOnlyList<string> ClusterOverrides(ChaosPlan plan) =>
    [
        $"mcactors.checkpoint.epoch-interval = {ChaosPlan.EpochMs}ms",
        "mcactors.volume.size = 64MiB",
        $"mcactors.guest.seed = {plan.GuestSeed}",
        "mcactors.coordinator.assign-timeout = 2s",
        "mcactors.coordinator.assign-retry = 250ms",
        "akka.cluster.retry-unsuccessful-join-after = 1s",
        .. NodeFaults.NodeOverrides(plan),
    ];

    private static readonly TimeSpan RolesTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DownTimeout = ChaosRecovery.DownTimeout;
    private static readonly TimeSpan ProgressTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Poll = ChaosRecovery.Poll;
    private const int MaxDetails = 9;

    public static async Task<int> RunAsync(ChaosOptions options, TextWriter output, CancellationToken cancel)
    {
        var faults = options.Faults is { Count: > 0 } chosen ? chosen : NodeFaults.Available;
        await output.WriteLineAsync($"chaos: {options.Runs} runs, seed {options.Seed}, client {options.Client.ToString().ToLowerInvariant()}, faults: {string.Join(", ", faults.Select(ChaosPlan.NameOf))}" +
            $"; data in {options.DataDirectory}");
        Directory.CreateDirectory(options.DataDirectory);
        int passed = 0, failed = 0;
        var total = Stopwatch.StartNew();
        for (var i = 0; i < options.Runs; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var plan = ChaosPlan.From(ChaosPlan.RunSeed(options.Seed, i), faults);
            var dir = Path.Combine(options.DataDirectory, $"run-{i + 1}-seed-{plan.Seed}");
            var head = $"run {i + 1}/{options.Runs} seed {plan.Seed} fault={plan.Label} replicas={plan.Replicas}";
            ChaosResult result;
            try
            {
                result = await RunOneAsync(plan, dir, options.Overrides, cancel, options.Client);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
            {
                result = new ChaosResult(plan, $"run aborted: {e.GetType().Name}: {e.Message}", "", TimeSpan.Zero);
            }
            if (result.Passed)
            {
                passed++;
                TryDelete(dir);
                await output.WriteLineAsync($"{head} {result.Summary} PASS ({result.Elapsed.TotalSeconds:0.0} s)");
            }
            else
            {
                failed++;
                await output.WriteLineAsync($"{head} {result.Summary} FAIL: {result.Failure} (logs in {dir})");
                foreach (var detail in (result.Details ?? []).Skip(1).Take(MaxDetails))
                    await output.WriteLineAsync($"  also: {detail}");
                if (result.Details is { Count: > MaxDetails + 1 } many)
                    await output.WriteLineAsync($"  ... and {many.Count - MaxDetails - 1} more");
            }
        }
        await output.WriteLineAsync($"({total.Elapsed.TotalSeconds:0} s, {total.Elapsed.TotalSeconds / Math.Max(1, options.Runs):0.0} s per run)");
        await output.WriteLineAsync($"{passed} passed, {failed} failed");
        if (failed == 0)
            TryDelete(options.DataDirectory, onlyIfEmpty: true);
        return failed == 0 ? 0 : 1;
    }

    /// <summary>
    /// One run: start, warm up, one fault, recover, stop the guest, stop the nodes, check. With
    /// <paramref name="client"/> NBD the nodes serve NBD (no synthetic guest), the NBD workload runs
    /// from the roles' assignment until a while after recovery, and its history is checked.
    /// </summary>
    public static async Task<ChaosResult> RunOneAsync(ChaosPlan plan, string dir, IReadOnlyList<string> overrides, CancellationToken cancel,
        ChaosClient client = ChaosClient.Synthetic)
    {
        var clock = Stopwatch.StartNew();
        var seen = new ChaosObservations(plan);
        var nbd = client == ChaosClient.Nbd;
        await using (var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, plan.Replicas, [.. ClusterOverrides(plan), .. overrides],
            Nbd: nbd, Netns: NetworkFaults.Is(plan.Fault))))
        {
            var tracker = new StatusTracker(cluster.Observer);
            seen.Tracker = tracker;
            var start = tracker.Record(await cluster.WaitForRolesAsync(RolesTimeout, cancel));
            seen.StartupMs = clock.Elapsed.TotalMilliseconds;
            cluster.UpdateTopology(start);
            await using var workload = nbd ? NbdChaosClient.Start(plan, dir, cancel) : null;
            seen.Mark("start", clock);
            seen.GenerationBefore = start.Generation;
            seen.PrimaryBefore = start.Primary!;
            var target = plan.Fault switch
            {
                var f when f is ChaosFault.KillPrimary or ChaosFault.PartitionPrimary || NetworkFaults.TargetsPrimary(f) => start.Primary!,
                ChaosFault.KillArbiter => cluster.Nodes.First(n => n.Options.Kind == McActors.Hosting.NodeKind.Arbiter).Options.Name,
                _ => start.Secondaries[plan.SecondaryIndex % start.Secondaries.Count],
            };
            seen.Target = target;

            // Warm up: checkpoints commit, the guest has written.
            await tracker.UntilAsync(_ => false, plan.Warmup, Poll, cancel);
            if (await tracker.UntilAsync(s => s.LastCommitted > start.LastCommitted, ProgressTimeout, Poll, cancel) is not { } warm)
                return seen.Fail("progress", $"no checkpoint committed within {(plan.Warmup + ProgressTimeout).TotalSeconds:0.0} s of the roles' assignment", clock.Elapsed);
            // On a loaded machine a secondary may have been dropped as too slow already: the fault is
            // meant for a whole replica set, so wait (bounded) for its re-protection first.
            if (warm.Secondaries.Count < plan.Replicas - 1)
                warm = await tracker.UntilAsync(s => s.Secondaries.Count == plan.Replicas - 1, SetupTimeout, Poll, cancel) ?? tracker.Last!;
            var replicaTarget = plan.Fault != ChaosFault.KillArbiter;
            if (warm.Primary != seen.PrimaryBefore || warm.Generation != seen.GenerationBefore
                || replicaTarget && !warm.Secondaries.Contains(target) && target != warm.Primary)
                return seen.Fail("setup", $"roles changed before the fault: generation {warm.Generation}, primary {warm.Primary}, secondaries [{string.Join(", ", warm.Secondaries)}]", clock.Elapsed);

            seen.Mark("warm", clock);
            await WaitForPhaseAsync(plan, tracker, cancel);
            seen.CommittedBeforeFault = tracker.MaxCommitted;
            var node = cluster.Node(target);
            switch (plan.Fault)
            {
                case ChaosFault.KillPrimary:
                case ChaosFault.KillSecondary:
                case ChaosFault.KillArbiter:
                    seen.FaultAt = cluster.Kill(target);
                    break;
                case ChaosFault.PartitionPrimary:
                case ChaosFault.PartitionSecondary:
                    seen.FaultAt = node.Pause();
                    break;
                case ChaosFault.DiskErrorSecondary:
                    seen.FaultAt = DateTime.UtcNow;
                    // Half the runs (by seed) fail a write, the other half an fsync (a lost writeback).
                    seen.Notes.Add(await NodeFaults.InjectStoreFaultAsync(cluster.Observer, node, plan.Fault, afterWrites: 16, TimeSpan.Zero,
                        failSync: plan.Seed % 2 == 0));
                    break;
                case ChaosFault.SlowSecondary:
                    seen.FaultAt = DateTime.UtcNow;
                    seen.Notes.Add(await NodeFaults.InjectStoreFaultAsync(cluster.Observer, node, plan.Fault, 0, TimeSpan.FromMilliseconds(5)));
                    break;
                case var f when NetworkFaults.Is(f):
                    seen.FaultAt = await NetworkFaults.InjectAsync(plan, cluster, tracker, seen, target, cancel);
                    break;
            }

            if (await RecoverAsync(plan, cluster, tracker, seen, node, clock, cancel) is { } early)
                return early;
            cluster.UpdateTopology(tracker.Last);

            // The volume makes progress after the fault: a checkpoint beyond everything seen so far commits.
            var mark = tracker.MaxCommitted;
            if (await tracker.UntilAsync(s => s.LastCommitted > mark, ProgressTimeout, Poll, cancel) is null)
                return seen.Fail("progress", $"no checkpoint committed after {mark} within {ProgressTimeout.TotalSeconds:0} s of recovery " +
                    $"(generation {tracker.Last?.Generation}, primary {tracker.Last?.Primary ?? "none"})", clock.Elapsed);

            // Invariant 5: a restarted node, or one whose disk failed, is running (it recovered or waits
            // for a resync), not crashed.
            if ((seen.Restarted || NodeFaults.IsStoreFault(plan.Fault)) && cluster.Node(target).HasExited)
                seen.Problems.Add($"(5) {target}{(seen.Restarted ? ", restarted with its data directory," : ", after its store fault,")} exited with code {cluster.Node(target).ExitCode}; see {cluster.Node(target).LogPath}");

            seen.Mark("progress", clock);
            if (workload is not null)
            {
                // The client goes on for a while on the new primary, then stops, drains and reads back.
                await tracker.UntilAsync(_ => false, NbdChaosClient.AfterRecovery, Poll, cancel);
                cluster.UpdateTopology(tracker.Last);
                await workload.FinishAsync(seen);
                seen.Mark("nbd", clock);
            }
            var stopped = await cluster.Observer.StopGuestAsync(TimeSpan.FromSeconds(30));
            seen.StoppedAt = stopped.Epoch;
            seen.Final = tracker.Record(await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5)));
            foreach (var n in cluster.Nodes.Where(n => n.HasExited && n.Options.Name != target))
                seen.Problems.Add($"(liveness) {n.Options.Name} exited with code {n.ExitCode} though no fault was aimed at it; see {n.LogPath}");
            // Checkpoint StoppedAt is committed and durable on every secondary; the primary writes its
            // guest state when Commit reaches it. Once the files are there the nodes end with SIGKILL
            // (a crash, not a power cut: what they wrote is in the page cache), and verification
            // recovers the stores from what the crash left.
            var replicas = seen.Final.Primary is null ? seen.Final.Secondaries : [seen.Final.Primary, .. seen.Final.Secondaries];
            await ChaosRecovery.UntilAsync(() => replicas.All(r => File.Exists(GuestStateFiles.PathIn(Path.Combine(dir, r), stopped.Epoch))), TimeSpan.FromSeconds(5), cancel);
            seen.Mark("stop", clock);
            await cluster.CrashAllAsync();
        }
        seen.Mark("shutdown", clock);

        // The synthetic guest's state says what its image must hold; an NBD client's history was checked
        // above, and the replicas' images must still be identical.
        seen.Verdict = seen.Final is not { } final ? new DemoVerdict(false, "no primary at the end")
            : nbd ? DemoVerifier.VerifyImages(dir, final, seen.StoppedAt)
            : DemoVerifier.Verify(dir, final, seen.StoppedAt);
        seen.Mark("verify", clock);
        return seen.Result(clock.Elapsed);
    }

    /// <summary>Waits until the pipeline is in the plan's phase, as the coordinator reports it.</summary>
    private static async Task WaitForPhaseAsync(ChaosPlan plan, StatusTracker tracker, CancellationToken cancel)
    {
        var limit = TimeSpan.FromSeconds(3);
        switch (plan.Phase)
        {
            case ChaosPhase.Prepare:
                await tracker.UntilAsync(s => s.InFlight > 0, limit, TimeSpan.FromMilliseconds(5), cancel);
                break;
            case ChaosPhase.Commit:
                var before = tracker.Last?.LastCommitted ?? 0;
                await tracker.UntilAsync(s => s.LastCommitted > before, limit, TimeSpan.FromMilliseconds(5), cancel);
                break;
            default:
                await Task.Delay(plan.RandomDelay, cancel);
                break;
        }
    }

    /// <summary>What follows the fault until the cluster should be whole again; a result if the run already failed.</summary>
    private static async Task<ChaosResult?> RecoverAsync(ChaosPlan plan, LocalCluster.LocalCluster cluster, StatusTracker tracker,
        ChaosObservations seen, LocalNodeProcess node, System.Diagnostics.Stopwatch clock, CancellationToken cancel)
    {
        if (NetworkFaults.Is(plan.Fault))
            return await NetworkFaults.RecoverAsync(plan, cluster, tracker, seen, clock, cancel);
        var target = node.Options.Name;
        var primaryFault = plan.Fault is ChaosFault.KillPrimary or ChaosFault.PartitionPrimary;
        var partition = plan.Fault is ChaosFault.PartitionPrimary or ChaosFault.PartitionSecondary;

        if (primaryFault)
        {
            var done = await tracker.UntilAsync(
                s => s.LastFailover is { ResumedAt: not null } f && f.Generation > seen.GenerationBefore, FailoverTimeout, Poll, cancel);
            if (done is null)
            {
                node.Resume();
                return seen.Fail("failover", $"no failover from {target} within {FailoverTimeout.TotalSeconds:0} s (last: generation {tracker.Last?.Generation}, primary {tracker.Last?.Primary ?? "none"})", TimeSpan.Zero);
            }
            seen.Failover = ChaosRecovery.TimelineOf(cluster, seen, done.LastFailover!, node);
        }
        else if (partition)
        {
            // A partitioned secondary must be downed by the majority before it is let back.
            if (!await ChaosRecovery.UntilDownedAsync(cluster, node, cancel))
            {
                node.Resume();
                return seen.Fail("(4)", $"partitioned {target} was not downed within {DownTimeout.TotalSeconds:0} s", TimeSpan.Zero);
            }
        }
        else if (plan.Fault == ChaosFault.KillSecondary)
        {
            // Left out of the replica set (prepare timeout, or downed and terminated).
            if (await tracker.UntilAsync(s => !s.Secondaries.Contains(target), DownTimeout, Poll, cancel) is null)
                return seen.Fail("progress", $"killed secondary {target} still in the replica set after {DownTimeout.TotalSeconds:0} s", TimeSpan.Zero);
        }

        if (partition)
        {
            // Healing the partition: the downed node must notice and stop itself (exit code 3), so that it
            // can never act as a primary (or a secondary) of a generation it is not part of.
            node.Resume();
            await ChaosRecovery.CheckFencedExitAsync(node, "partitioned", "partition", seen.Problems);
        }

        if (NodeFaults.IsStoreFault(plan.Fault))
        {
            // A failing disk must take the secondary out of the replica set (it cannot vouch for its
            // store); a slow one either keeps up for a while or is dropped (prepare timeout, full window).
            var left = await tracker.UntilAsync(
                s => !s.Secondaries.Contains(target) || (plan.Fault == ChaosFault.SlowSecondary && s.LastCommitted > seen.CommittedBeforeFault + 20),
                DownTimeout, Poll, cancel);
            if (plan.Fault == ChaosFault.DiskErrorSecondary && (left is null || left.Secondaries.Contains(target)))
                seen.Problems.Add($"(5) {target}'s store failed but it stayed in the replica set for {DownTimeout.TotalSeconds:0} s");
            seen.Notes.Add(await NodeFaults.HealStoreAsync(cluster.Observer, node));
        }
        seen.Mark("fault", clock);

        var rejoinFrom = DateTime.UtcNow;
        if (!NodeFaults.IsStoreFault(plan.Fault))
        {
            // The node that took the fault comes back with its data directory, to be re-protected (invariant 5).
            await cluster.RestartAsync(target);
            seen.Restarted = true;
            rejoinFrom = DateTime.UtcNow;
        }
        if (plan.Fault == ChaosFault.KillArbiter)
        {
            // An arbiter holds no replica: back in the cluster is all there is to it.
            seen.Mark("rejoin", clock);
            return null;
        }
        await ChaosRecovery.UntilReprotectedAsync(tracker, [target], rejoinFrom, cancel);
        seen.Reprotected = tracker.Last?.Secondaries.Contains(target) == true;
        seen.Mark("rejoin", clock);
        return null;
    }

    private static void TryDelete(string dir, bool onlyIfEmpty = false)
    {
        try
        {
            if (Directory.Exists(dir) && (!onlyIfEmpty || !Directory.EnumerateFileSystemEntries(dir).Any()))
                Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
