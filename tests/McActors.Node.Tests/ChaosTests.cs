using McActors.Node.Chaos;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Tests;

/// <summary>The chaos command's pure parts: seeds and plans, and the invariant checks over what a run saw; and one short <c>--client nbd</c> run end to end.</summary>
[Collection(nameof(LocalClusterTests))] // the end-to-end run is a multi-process cluster: one at a time
public sealed class ChaosTests
{
    /// <summary>The CI series: its 10 runs cover every fault (kill, partition, store; primary, secondary, arbiter) and every phase.</summary>
    public const long FixedSeed = 20261316;

    /// <summary>
    /// CI's series with the NBD client: its 16 runs draw every fault of <see cref="NbdFaults"/> and
    /// kill-primary at every phase.
    /// </summary>
    public const long NbdSeed = 20272099;

    public const int NbdRuns = 16;

    /// <summary>
    /// Every fault: the node faults (SIGSTOP partitions included: a pause between the cluster's
    /// downing time and mcactors.node.pause-limit ends when a peer's quarantine reaches the node,
    /// <see cref="Hosting.QuarantineGuard"/>) and the network partitions.
    /// </summary>
    public static readonly IReadOnlyList<ChaosFault> NbdFaults = [.. NodeFaults.Available, .. NetworkFaults.All];

    [Fact]
    public void A_printed_run_seed_replays_the_same_plan_as_run_one_of_its_own_series()
    {
        for (var i = 0; i < 20; i++)
        {
            var seed = ChaosPlan.RunSeed(FixedSeed, i);
            var plan = ChaosPlan.From(seed, NodeFaults.Available);
            Assert.Equal(plan, ChaosPlan.From(ChaosPlan.RunSeed(seed, 0), NodeFaults.Available));
        }
        Assert.Equal(20, Enumerable.Range(0, 20).Select(i => ChaosPlan.RunSeed(FixedSeed, i)).Distinct().Count());
    }

    [Fact]
    public void The_fixed_series_covers_every_available_fault_and_phase()
    {
        var plans = Enumerable.Range(0, 10).Select(i => ChaosPlan.From(ChaosPlan.RunSeed(FixedSeed, i), NodeFaults.Available)).ToList();
        Assert.Equal(NodeFaults.Available.Order(), plans.Select(p => p.Fault).Distinct().Order());
        Assert.Equal(Enum.GetValues<ChaosPhase>(), plans.Where(p => p.Fault is ChaosFault.KillPrimary or ChaosFault.KillSecondary).Select(p => p.Phase).Distinct().Order());
        Assert.All(plans, p => Assert.InRange(p.Replicas, 2, 3));
    }

    [Fact]
    public void The_nbd_series_covers_every_fault_and_kill_primary_at_every_phase()
    {
        var plans = Enumerable.Range(0, NbdRuns).Select(i => ChaosPlan.From(ChaosPlan.RunSeed(NbdSeed, i), NbdFaults)).ToList();
        Assert.Equal(NbdFaults.Order(), plans.Select(p => p.Fault).Distinct().Order());
        Assert.All(NetworkFaults.All, f => Assert.Contains(f, NbdFaults));
        Assert.Equal(Enum.GetValues<ChaosPhase>(), plans.Where(p => p.Fault == ChaosFault.KillPrimary).Select(p => p.Phase).Distinct().Order());
    }

    /// <summary>
    /// The block-level check in CI: a real NBD client (reconnect and resend included) through every
    /// fault, partitions cut by iptables in network namespaces (root, as in CI) included.
    /// </summary>
    [Fact]
    public void Chaos_with_the_nbd_client_over_every_fault_passes_the_history_and_invariant_checks()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-chaos-nbd-series-{Guid.NewGuid():N}");
        var passed = false;
        try
        {
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(25),
                ["chaos", "--client", "nbd", .. NbdFaults.SelectMany(f => new[] { "--fault", ChaosPlan.NameOf(f) }),
                 "--runs", NbdRuns.ToString(), "--seed", NbdSeed.ToString(), "--data-dir", dir]);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.True(exit == 0, $"chaos exited {exit}\n{output}\n{error}");
            Assert.Equal($"{NbdRuns} passed, 0 failed", lines[^1]);
            passed = true;
            var runs = lines.Where(l => l.StartsWith("run ", StringComparison.Ordinal)).ToList();
            Assert.Equal(NbdRuns, runs.Count);
            Assert.All(runs, r => Assert.Matches(@"nbd .*: [1-9]\d*/\d+ writes ok .* PASS \(", r));
        }
        finally
        {
            if (passed && Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_checks_pass_a_clean_failover_and_name_each_broken_invariant()
    {
        Assert.Empty(ChaosChecks.Check(Failover(target: 40, committedBefore: 40, stoppedAt: 90)));

        var lost = ChaosChecks.Check(Failover(target: 38, committedBefore: 40, stoppedAt: 90)).ToList();
        Assert.Contains(lost, p => p.StartsWith("(3)", StringComparison.Ordinal) && p.Contains("40"));

        var twoPrimaries = Failover(target: 40, committedBefore: 40, stoppedAt: 90);
        twoPrimaries.Tracker!.Record(Status(2, "replica-1", 60));
        Assert.Contains(ChaosChecks.Check(twoPrimaries), p => p.StartsWith("(4) generation 2", StringComparison.Ordinal));

        var backwards = Failover(target: 40, committedBefore: 40, stoppedAt: 45);
        backwards.Tracker!.Record(Status(2, "replica-2", 50)); // seen committed, then the guest stopped below it
        Assert.Contains(ChaosChecks.Check(backwards), p => p.StartsWith("(3) the guest stopped", StringComparison.Ordinal));

        var unverified = Failover(target: 40, committedBefore: 40, stoppedAt: 90);
        unverified.Verdict = new Demo.DemoVerdict(false, "images differ at byte 4096");
        Assert.Contains(ChaosChecks.Check(unverified), p => p == "(1)(2) images differ at byte 4096");
    }

    [Fact]
    public void Chaos_with_the_nbd_client_runs_a_real_nbd_workload_through_a_fault_and_checks_its_history()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-chaos-nbd-test-{Guid.NewGuid():N}");
        var passed = false;
        try
        {
            // A secondary's crash: the client keeps writing and flushing on the primary throughout.
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(5),
                "chaos", "--client", "nbd", "--runs", "1", "--seed", "7", "--fault", "kill-secondary", "--data-dir", dir);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.True(exit == 0, $"chaos exited {exit}\n{output}\n{error}");
            Assert.Equal("1 passed, 0 failed", lines[^1]);
            passed = true;
            Assert.Contains(lines, l => l.StartsWith("chaos: 1 runs, seed 7, client nbd,", StringComparison.Ordinal));
            var run = Assert.Single(lines, l => l.StartsWith("run 1/1 seed 7 fault=kill-secondary@", StringComparison.Ordinal));
            // The workload did write, flush and read, and its history was checked.
            var stats = System.Text.RegularExpressions.Regex.Match(run, @"nbd .*: (\d+)/(\d+) writes ok \(0 errors\), (\d+)/(\d+) flushes ok, (\d+) reads");
            Assert.True(stats.Success, run);
            Assert.True(int.Parse(stats.Groups[1].Value) > 0 && int.Parse(stats.Groups[3].Value) > 0, run);
            Assert.Contains(" PASS (", run);
        }
        finally
        {
            if (passed && Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    private static ChaosObservations Failover(long target, long committedBefore, long stoppedAt)
    {
        var plan = ChaosPlan.From(1, [ChaosFault.KillPrimary]);
        var tracker = new StatusTracker(null!);
        tracker.Record(Status(1, "replica-1", committedBefore));
        tracker.Record(Status(2, "replica-2", stoppedAt));
        var at = DateTime.UtcNow;
        var report = new FailoverReport(2, "replica-1", "replica-2", target, at.AddSeconds(1), at.AddSeconds(2), at.AddSeconds(2), at.AddSeconds(2.1), at.AddSeconds(2.2), 1, 10, 40960, 5);
        return new ChaosObservations(plan)
        {
            Tracker = tracker,
            GenerationBefore = 1,
            PrimaryBefore = "replica-1",
            Target = "replica-1",
            FaultAt = at,
            CommittedBeforeFault = committedBefore,
            Failover = FailoverTimeline.From(at, report, new MemberTimes(null, null, null)),
            StoppedAt = stoppedAt,
            Verdict = new Demo.DemoVerdict(true, "ok"),
        };
    }

    private static CoordinatorStatus Status(long generation, string primary, long committed) =>
        new(generation, primary, ["replica-3"], committed, 0, committed, 0, 0, 0, 0, false);
}
