using System.Diagnostics;
using System.Text.Json;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Demo;

/// <param name="KillPrimaryAt">When the primary gets SIGKILL, from the guest's start; null: no failover.</param>
public sealed record DemoOptions(
    string DataDirectory,
    TimeSpan Duration,
    IReadOnlyList<string> Overrides,
    string? JsonPath,
    int Replicas = DemoRunner.DefaultReplicas,
    TimeSpan? KillPrimaryAt = null);

/// <summary>
/// The main job: a local cluster (replicas and an arbiter, one process each) runs the synthetic
/// guest with live progress; mid-run the primary gets SIGKILL, a secondary takes over at the last
/// committed checkpoint (the timeline is printed) and the guest runs on there; the killed node is
/// started again to be re-protected. Then the guest stops at a last committed checkpoint and the
/// new primary and every in-sync secondary are verified against it. Exit 0 only if they agree.
/// </summary>
public static class DemoRunner
{
    /// <summary>3 replicas: after a failover a secondary still protects the volume.</summary>
    public const int DefaultReplicas = 3;

    /// <summary>How long the demo waits past its duration for the restarted node to be in sync.</summary>
    private static readonly TimeSpan ReprotectGrace = TimeSpan.FromSeconds(60);

    /// <summary>How long it waits, when no re-protection of the restarted node shows in the status at all.</summary>
    private static readonly TimeSpan ReprotectNotStarted = TimeSpan.FromSeconds(8);

    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(DemoOptions options, TextWriter output, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        Task Say(string line) => output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,5:0.0}s] {line}");
        await output.WriteLineAsync($"McActors demo: {options.Replicas} replicas + 1 arbiter on 127.0.0.1, data in {options.DataDirectory}");
        CoordinatorStatus last;
        long stoppedAt;
        FailoverTimeline? failover = null;
        string? killed = null;
        bool? reprotected = null;
        ResyncProgress? lastResync = null;
        await using (var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(options.DataDirectory, options.Replicas, options.Overrides)))
        {
            var tracker = new StatusTracker(cluster.Observer);
            last = tracker.Record(await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(60), cancel));
            cluster.UpdateTopology(last);
            await Say($"roles: primary {last.Primary}, secondaries {string.Join(", ", last.Secondaries)} (generation {last.Generation}); guest running");

            var run = Stopwatch.StartNew();
            var previous = (Time: run.Elapsed, last.CheckpointsCommitted);
            DateTime? killedAt = null;
            long generationBefore = 0, committedBefore = 0;
            while (run.Elapsed < options.Duration || (killedAt is not null && (failover is null || reprotected is null)))
            {
                await Task.Delay(TimeSpan.FromSeconds(killedAt is not null && failover is null ? 0.25 : 1), cancel);
                if (options.KillPrimaryAt is { } killAt && killedAt is null && run.Elapsed >= killAt && last.Primary is { } primary)
                {
                    last = await tracker.PollAsync(TimeSpan.FromSeconds(2)) ?? last;
                    (generationBefore, committedBefore, killed) = (last.Generation, last.LastCommitted, last.Primary);
                    killedAt = cluster.Kill(killed!);
                    await Say($"SIGKILL to the primary {killed} (generation {generationBefore}, last committed checkpoint {committedBefore})");
                    continue;
                }
                if (await tracker.PollAsync(TimeSpan.FromSeconds(2)) is not { } status)
                {
                    await Say("coordinator did not answer in 2 s");
                    continue;
                }
                last = status;
                cluster.UpdateTopology(last);
                if (killedAt is { } at && failover is null)
                {
                    if (last.LastFailover is { ResumedAt: not null } report && report.Generation > generationBefore)
                    {
                        var node = cluster.Node(killed!).Options;
                        failover = FailoverTimeline.From(at, report, cluster.Observer.Membership.Of(node.Host, node.Port));
                        foreach (var line in failover.Lines())
                            await Say(line);
                        if (report.TargetCheckpoint < committedBefore)
                            await Say($"checkpoint {committedBefore} was committed before the kill but the failover went back to {report.TargetCheckpoint}");
                        await cluster.RestartAsync(killed!);
                        await Say($"{killed} restarted with its data directory: it rejoins to be re-protected");
                    }
                    else if (DateTime.UtcNow - at > FailoverTimeout)
                        throw new TimeoutException($"no failover within {FailoverTimeout.TotalSeconds:0} s of killing {killed}; see the node.log files under {options.DataDirectory}");
                    continue;
                }
                if (killed is not null && failover is not null && reprotected is null)
                {
                    var resync = last.Resyncing.FirstOrDefault(r => r.Replica == killed);
                    lastResync = resync ?? lastResync;
                    if (last.Secondaries.Contains(killed))
                    {
                        reprotected = true;
                        await Say($"{killed} is back in sync: a secondary of generation {last.Generation}");
                    }
                    else if (run.Elapsed >= options.Duration
                             && run.Elapsed - options.Duration > (resync is null ? ReprotectNotStarted : ReprotectGrace))
                    {
                        reprotected = false;
                        await Say($"{killed} was not re-protected in time ({(lastResync is null ? "no resync started" : $"resync seen at {lastResync.ScannedBytes >> 20}/{lastResync.TotalBytes >> 20} MiB{(resync is null ? ", then gone" : "")}")}); verifying without it");
                    }
                    else if (resync is not null)
                        await Say($"re-protecting {killed}: scanned {resync.ScannedBytes >> 20}/{resync.TotalBytes >> 20} MiB, copied {resync.CopiedBytes >> 20} MiB");
                }
                var rate = (last.CheckpointsCommitted - previous.CheckpointsCommitted) / (run.Elapsed - previous.Time).TotalSeconds;
                previous = (run.Elapsed, last.CheckpointsCommitted);
                await Say($"gen {last.Generation} epoch {last.LastCommitted,5}  {rate,6:0.0} ckpt/s  " +
                    $"commit p50 {last.CommitP50Ms,5:0.0} ms p99 {last.CommitP99Ms,5:0.0} ms  " +
                    $"{last.BytesCommitted / 1e6,8:0.0} MB replicated  in flight {last.InFlight}{(last.Degraded ? "  DEGRADED" : "")}");
            }
            if (killedAt is not null && failover is null)
                throw new TimeoutException($"the run ended before a failover from {killed} was seen; see the node.log files under {options.DataDirectory}");

            // A replica being re-protected (one dropped as too slow, say) is worth waiting for: it is
            // verified too once in sync.
            var resyncUntil = DateTime.UtcNow + ReprotectGrace;
            while (last.Resyncing.Any(r => !r.Done) && DateTime.UtcNow < resyncUntil)
            {
                var r = last.Resyncing.First(r => !r.Done);
                await Say($"waiting for {r.Replica} to be re-protected: scanned {r.ScannedBytes >> 20}/{r.TotalBytes >> 20} MiB, copied {r.CopiedBytes >> 20} MiB");
                await Task.Delay(TimeSpan.FromSeconds(1), cancel);
                last = await tracker.PollAsync(TimeSpan.FromSeconds(2)) ?? last;
            }
            await Say("stopping the guest at a last checkpoint");
            var stopped = await cluster.Observer.StopGuestAsync(TimeSpan.FromSeconds(30));
            stoppedAt = stopped.Epoch;
            last = tracker.Record(await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5)));
            await Say($"guest stopped; checkpoint {stoppedAt} committed on primary {last.Primary} and secondaries [{string.Join(", ", last.Secondaries)}]; stopping the nodes");
            if (tracker.PrimariesByGeneration.FirstOrDefault(g => g.Value.Count > 1) is { Value: not null } two)
                throw new InvalidOperationException($"generation {two.Key} had two primaries: {string.Join(", ", two.Value)}");
        }

        var verdict = DemoVerifier.Verify(options.DataDirectory, last, stoppedAt);
        if (verdict.Verified && failover is not null && failover.Report.TargetCheckpoint > stoppedAt)
            verdict = new DemoVerdict(false, $"the guest stopped at checkpoint {stoppedAt}, before the failover's target {failover.Report.TargetCheckpoint}");
        await Say($"{(verdict.Verified ? "VERIFIED" : "NOT VERIFIED")}: {verdict.Detail}");
        if (options.JsonPath is not null)
        {
            var summary = new Dictionary<string, object?>
            {
                ["verified"] = verdict.Verified,
                ["detail"] = verdict.Detail,
                ["checkpoints_committed"] = last.CheckpointsCommitted,
                ["last_committed_epoch"] = stoppedAt,
                ["commit_p50_ms"] = last.CommitP50Ms,
                ["commit_p99_ms"] = last.CommitP99Ms,
                ["mb_replicated"] = last.BytesCommitted / 1e6,
                ["writes_replicated"] = last.WritesCommitted,
                ["duration_s"] = options.Duration.TotalSeconds,
                ["data_dir"] = options.DataDirectory,
                ["replicas"] = options.Replicas,
                ["primary"] = last.Primary,
                ["secondaries"] = last.Secondaries,
                ["failover"] = new Dictionary<string, object?>
                {
                    ["happened"] = failover is not null,
                    ["total_ms"] = failover?.TotalMs ?? 0,
                    ["rolled_back_epochs"] = failover?.Report.RolledBackEpochs ?? 0,
                    ["detect_ms"] = failover?.DetectMs,
                    ["from"] = killed,
                    ["to"] = failover?.Report.ToPrimary,
                    ["target_checkpoint"] = failover?.Report.TargetCheckpoint,
                    ["reprotected"] = reprotected,
                },
            };
            await File.WriteAllBytesAsync(options.JsonPath, JsonSerializer.SerializeToUtf8Bytes(summary, new JsonSerializerOptions { WriteIndented = true }), CancellationToken.None);
        }
        return verdict.Verified ? 0 : 1;
    }
}
