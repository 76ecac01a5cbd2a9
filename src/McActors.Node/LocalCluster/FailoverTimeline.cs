using McActors.Protocol;

namespace McActors.Node.LocalCluster;

/// <summary>
/// One failover as seen from outside: the SIGKILL (or partition) instant, then the coordinator's
/// report, with detection and downing taken from the observer's own membership events when the
/// coordinator did not see them (it may have moved). All UTC wall clock on this machine.
/// </summary>
public sealed record FailoverTimeline(DateTime FaultAt, FailoverReport Report, DateTime? DetectedAt, DateTime? DownedAt)
{
    public static FailoverTimeline From(DateTime faultAt, FailoverReport report, MemberTimes seen) =>
        new(faultAt, report, report.DetectedAt ?? seen.UnreachableAt, report.DownedAt ?? seen.DownedAt ?? seen.RemovedAt);

    public double? DetectMs => Ms(FaultAt, DetectedAt);

    public double? DownMs => Ms(DetectedAt, DownedAt);

    /// <summary>Downed → the new primary's image is the target checkpoint again (new generation persisted, promotion, rollback).</summary>
    public double? RollbackMs => Ms(DownedAt ?? Report.PromotedAt, Report.RolledBackAt);

    public double? ResumeMs => Ms(Report.RolledBackAt, Report.ResumedAt);

    /// <summary>Fault → the new primary accepts the guest's writes again.</summary>
    public double? TotalMs => Ms(FaultAt, Report.ResumedAt);

    public IEnumerable<string> Lines()
    {
        var r = Report;
        yield return $"failover to {r.ToPrimary} (generation {r.Generation}, checkpoint {r.TargetCheckpoint}), ms after the fault:";
        yield return $"  detected     {Since(DetectedAt)}";
        yield return $"  downed       {Since(DownedAt)}";
        yield return $"  promoted     {Since(r.PromotedAt)}";
        yield return $"  rolled back  {Since(r.RolledBackAt)}   {r.RolledBackEpochs} epochs, {r.RolledBackBlocks} blocks, " +
            $"{r.RolledBackBytes / 1048576.0:0.0} MiB in {r.RollbackMs:0.0} ms";
        yield return $"  resumed      {Since(r.ResumedAt)}   the guest runs on {r.ToPrimary}";
    }

    private string Since(DateTime? at) => at is { } t ? $"{(t - FaultAt).TotalMilliseconds,7:+0;-0} ms" : "      (not seen)";

    private static double? Ms(DateTime? from, DateTime? to) => from is { } f && to is { } t ? (t - f).TotalMilliseconds : null;
}
