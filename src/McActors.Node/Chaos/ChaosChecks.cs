using McActors.Node.Demo;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Chaos;

/// <summary>What a chaos run saw, filled in as it goes, and the invariant checks over it.</summary>
public sealed class ChaosObservations(ChaosPlan plan)
{
    public ChaosPlan Plan { get; } = plan;
    public StatusTracker? Tracker { get; set; }
    public double StartupMs { get; set; }
    public long GenerationBefore { get; set; }
    public string PrimaryBefore { get; set; } = "";
    public string Target { get; set; } = "";
    public DateTime FaultAt { get; set; }

    /// <summary>The highest checkpoint the runner saw committed before the fault.</summary>
    public long CommittedBeforeFault { get; set; }

    public FailoverTimeline? Failover { get; set; }
    public bool Restarted { get; set; }

    /// <summary>The nodes a network fault cut off beside <see cref="Target"/> (the coordinator-minority side).</summary>
    public List<string> Victims { get; } = [];
    public bool Reprotected { get; set; }
    public long StoppedAt { get; set; }
    public CoordinatorStatus? Final { get; set; }
    public DemoVerdict? Verdict { get; set; }
    public List<string> Notes { get; } = [];

    /// <summary>Where the run's time went: (phase, seconds), in order.</summary>
    public List<(string Phase, double Seconds)> Times { get; } = [];

    public void Mark(string phase, System.Diagnostics.Stopwatch clock)
    {
        var now = clock.Elapsed.TotalSeconds;
        Times.Add((phase, now - Times.Sum(t => t.Seconds)));
    }

    /// <summary>Broken invariants found along the way, each starting with its number.</summary>
    public List<string> Problems { get; } = [];

    public ChaosResult Fail(string invariant, string what, TimeSpan elapsed) =>
        new(Plan, $"{invariant} {what}", Summary(), elapsed);

    /// <summary>Checks invariants 1–5 as far as they are observable from outside, in order; the first broken one fails the run.</summary>
    public ChaosResult Result(TimeSpan elapsed)
    {
        var problems = ChaosChecks.Check(this).ToList();
        return new(Plan, problems.FirstOrDefault(), Summary(), elapsed, problems);
    }

    public string Summary()
    {
        var parts = new List<string>();
        if (Failover?.TotalMs is { } total)
            parts.Add($"failover {total / 1000:0.0} s to checkpoint {Failover.Report.TargetCheckpoint} (committed before: {CommittedBeforeFault}, rolled back {Failover.Report.RolledBackEpochs} epochs)");
        else if (CommittedBeforeFault > 0)
            parts.Add($"committed before: {CommittedBeforeFault}");
        if (Restarted && Plan.Fault == ChaosFault.KillArbiter)
            parts.Add("restarted");
        else if (Restarted)
            parts.Add(Reprotected ? "restarted, re-protected" : "restarted, not re-protected");
        else if (Plan.Fault is ChaosFault.DiskErrorSecondary or ChaosFault.SlowSecondary)
            parts.Add(Reprotected ? "healed, in sync" : "healed, not in sync");
        var nbd = Notes.Where(n => n.StartsWith("nbd ", StringComparison.Ordinal)).ToList();
        if (NetworkFaults.Is(Plan.Fault) && Notes.Except(nbd).Any())
            parts.Add(string.Join("; ", Notes.Except(nbd)));
        if (StoppedAt > 0)
            parts.Add($"stopped at {StoppedAt}");
        parts.AddRange(nbd);
        if (Times.Count > 0)
            parts.Add($"[{string.Join(" ", Times.Select(t => $"{t.Phase} {t.Seconds:0.0}"))}]");
        return string.Join(", ", parts);
    }
}

/// <summary>
/// DESIGN.md's invariants as a chaos run can observe them from outside the cluster.
/// (1)(2) the final primary's image is what its guest state at the final checkpoint says, replayed
/// from the workload's seed, and every in-sync secondary holds the same state and a byte-identical
/// image; (3) no checkpoint seen committed before the fault is lost: a failover targets at least
/// it, and the final checkpoint is at least every commit ever seen; (4) one primary per
/// generation in every status seen, the fault's victim excluded from the new generation, and a
/// node downed while partitioned exited with code 3; (5) a secondary that crashed is running again
/// after its restart (recovered or waiting to resync), and an in-sync one passes (1)(2).
/// </summary>
public static class ChaosChecks
{
    public static IEnumerable<string> Check(ChaosObservations seen)
    {
        if (seen.Verdict is { Verified: false } verdict)
            yield return $"(1)(2) {verdict.Detail}";
        var tracker = seen.Tracker!;
        if (seen.Failover is { } failover)
        {
            if (failover.Report.TargetCheckpoint < seen.CommittedBeforeFault)
                yield return $"(3) checkpoint {seen.CommittedBeforeFault} was committed before the fault, the failover went back to {failover.Report.TargetCheckpoint}";
            if (failover.Report.ToPrimary == seen.Target)
                yield return $"(4) the failover made {seen.Target}, the failed primary, primary again";
            if (failover.Report.FromPrimary != seen.PrimaryBefore)
                yield return $"(4) the failover was from {failover.Report.FromPrimary}, the primary was {seen.PrimaryBefore}";
        }
        if (seen.StoppedAt < tracker.MaxCommitted)
            yield return $"(3) the guest stopped at checkpoint {seen.StoppedAt}, below checkpoint {tracker.MaxCommitted} seen committed";
        foreach (var (generation, primaries) in tracker.PrimariesByGeneration)
            if (primaries.Count > 1)
                yield return $"(4) generation {generation} had {primaries.Count} primaries: {string.Join(", ", primaries)}";
        if (seen.Plan.Fault is ChaosFault.KillSecondary or ChaosFault.PartitionSecondary or ChaosFault.DiskErrorSecondary or ChaosFault.CutDuringResync)
        {
            if (tracker.PrimariesByGeneration.Any(g => g.Key > seen.GenerationBefore && g.Value.Contains(seen.Target)))
                yield return $"(5) {seen.Target}, the failed secondary, became primary";
            if (seen.Final is { } final && final.Generation != seen.GenerationBefore)
                yield return $"(4) a secondary's fault changed the generation {seen.GenerationBefore} -> {final.Generation}";
        }
        foreach (var problem in seen.Problems)
            yield return problem;
    }
}
