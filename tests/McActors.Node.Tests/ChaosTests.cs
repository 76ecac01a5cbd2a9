using McActors.Node.Chaos;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Tests;

/// <summary>The chaos command's pure parts: seeds and plans, and the invariant checks over what a run saw.</summary>
public sealed class ChaosTests
{
    /// <summary>The CI series: its 10 runs cover every fault (kill, partition, store; primary, secondary, arbiter) and every phase.</summary>
    public const long FixedSeed = 20261316;

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
