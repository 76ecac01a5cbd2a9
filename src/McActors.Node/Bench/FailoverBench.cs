using System.Diagnostics;
using McActors.Node.LocalCluster;
using McActors.Protocol;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Node.Bench;

/// <summary>What <c>bench failover</c> does.</summary>
/// <param name="Runs">Repetitions of the kill (a fresh cluster each); rows are medians.</param>
/// <param name="Keep">Keep the work directory (node logs) and print its path.</param>
public sealed record FailoverBenchSettings(int Runs, int Replicas, bool Keep, IReadOnlyList<string> Overrides);

/// <summary>
/// <c>bench failover</c>: local clusters with the guest running; the primary gets SIGKILL and the
/// time until the new primary accepts the guest's writes again is split into detection (kill →
/// unreachable), downing (→ downed), rollback (→ the new primary's image is the last committed
/// checkpoint again: new generation persisted, promotion, rollback) and resume (→ the guest runs).
/// Then the killed node comes back with an empty data directory and is re-protected by a copy of
/// the whole volume (MiB/s). In-process: a rollback store with 64 MiB dirty in one epoch after a
/// committed checkpoint, rolled back to it.
/// </summary>
public static class FailoverBench
{
    private const long Mib = 1 << 20;
    private static readonly TimeSpan RolesTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ReprotectTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan ReprotectStalled = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);

    public static Task<BenchReport> RunAsync(FailoverBenchSettings settings, TextWriter output, CancellationToken cancel) =>
        BenchWorkDirectory.UseAsync("failover", settings.Keep, output, work => MeasureAsync(settings, work, output, cancel));

    private static async Task<BenchReport> MeasureAsync(FailoverBenchSettings settings, string work, TextWriter output, CancellationToken cancel)
    {
        var report = new BenchReport();
        var timelines = new List<FailoverTimeline>();
        double? reprotect = null;
        for (var i = 0; i < settings.Runs; i++)
        {
            var last = i == settings.Runs - 1;
            var (timeline, mibPerSecond) = await RunOnceAsync(settings, Path.Combine(work, $"run-{i + 1}"), reprotect: last, output, cancel);
            timelines.Add(timeline);
            reprotect = mibPerSecond ?? reprotect;
            await output.WriteLineAsync($"run {i + 1}/{settings.Runs}: " +
                $"total {timeline.TotalMs:0} ms = detect {timeline.DetectMs:0} + down {timeline.DownMs:0} + rollback {timeline.RollbackMs:0} + resume {timeline.ResumeMs:0}" +
                $" ({timeline.Report.RolledBackEpochs} epochs, {timeline.Report.RolledBackBytes / (double)Mib:0.0} MiB rolled back in {timeline.Report.RollbackMs:0.0} ms)");
        }
        report.Add("failover_total_ms", Median(timelines, t => t.TotalMs), "ms", 0, BenchTarget.AtMost(3000));
        report.Add("detect_ms", Median(timelines, t => t.DetectMs), "ms", 0);
        report.Add("down_ms", Median(timelines, t => t.DownMs), "ms", 0);
        report.Add("rollback_ms", Median(timelines, t => t.RollbackMs), "ms", 0);
        report.Add("resume_ms", Median(timelines, t => t.ResumeMs), "ms", 0);
        report.Add("rollback_store_ms", Median(timelines, t => t.Report.RollbackMs), "ms", 1);

        var rollback = await Task.Run(() => MeasureRollback64MiB(Path.Combine(work, "rollback")), cancel);
        await output.WriteLineAsync($"rollback store: 64 MiB dirty in one epoch rolled back in {rollback:0.0} ms");
        report.Add("rollback_64mib_ms", rollback, "ms", 1, BenchTarget.AtMost(100));
        if (reprotect is { } rate)
            report.Add("reprotect_mib_s", rate, "MiB/s", 1);
        else
            await output.WriteLineAsync("reprotect_mib_s: not measured, the restarted node was not re-protected in time");
        return report;
    }

    private static async Task<(FailoverTimeline Timeline, double? ReprotectMibPerSecond)> RunOnceAsync(
        FailoverBenchSettings settings, string dir, bool reprotect, TextWriter output, CancellationToken cancel)
    {
        await using var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, settings.Replicas, settings.Overrides));
        var tracker = new StatusTracker(cluster.Observer);
        var start = tracker.Record(await cluster.WaitForRolesAsync(RolesTimeout, cancel));
        await Task.Delay(Warmup, cancel);
        if (await tracker.UntilAsync(s => s.LastCommitted > start.LastCommitted, TimeSpan.FromSeconds(15), Poll, cancel) is not { } before)
            throw new BenchFailedException($"no checkpoint committed within 15 s of the roles' assignment; see {dir}");
        var primary = cluster.Node(before.Primary!);
        var killedAt = cluster.Kill(primary.Options.Name);
        var done = await tracker.UntilAsync(s => s.LastFailover is { ResumedAt: not null } f && f.Generation > before.Generation, FailoverTimeout, Poll, cancel)
            ?? throw new BenchFailedException($"no failover within {FailoverTimeout.TotalSeconds:0} s of killing {primary.Options.Name}; see {dir}");
        var timeline = FailoverTimeline.From(killedAt, done.LastFailover!, cluster.Observer.Membership.Of(primary.Options.Host, primary.Options.Port));
        if (timeline.TotalMs is null || timeline.DetectMs is null || timeline.DownMs is null || timeline.RollbackMs is null || timeline.ResumeMs is null)
            throw new BenchFailedException($"incomplete failover timeline: {string.Join("; ", timeline.Lines())}");
        if (!reprotect)
            return (timeline, null);

        // Re-protection of a node that lost its disk: everything is copied.
        await primary.WaitForExitAsync(TimeSpan.FromSeconds(10));
        Directory.Delete(primary.Options.DataDirectory, recursive: true);
        var restartedAt = Stopwatch.StartNew();
        await cluster.RestartAsync(primary.Options.Name);
        TimeSpan? firstSeen = null;
        var lastProgress = TimeSpan.Zero;
        long total = 0, scanned = 0;
        var synced = await tracker.UntilAsync(s =>
        {
            if (s.Resyncing.FirstOrDefault(r => r.Replica == primary.Options.Name) is { } progress)
            {
                firstSeen ??= restartedAt.Elapsed;
                total = Math.Max(total, progress.TotalBytes);
                if (progress.ScannedBytes > scanned)
                    (scanned, lastProgress) = (progress.ScannedBytes, restartedAt.Elapsed);
            }
            // A resync that stopped moving (or never started) will not finish: give up.
            return s.Secondaries.Contains(primary.Options.Name) || restartedAt.Elapsed - lastProgress > ReprotectStalled;
        }, ReprotectTimeout, Poll, cancel);
        if (synced is null || !synced.Secondaries.Contains(primary.Options.Name))
        {
            await output.WriteLineAsync($"{primary.Options.Name} restarted with an empty disk was not re-protected " +
                $"(resync {(firstSeen is null ? "never seen" : $"seen, scanned {scanned / (double)Mib:0} of {total / (double)Mib:0} MiB")}); see {dir}");
            return (timeline, null);
        }
        var copyTime = restartedAt.Elapsed - (firstSeen ?? TimeSpan.Zero);
        var bytes = total > 0 ? total : (long)cluster.Observer.System.Settings.Config.GetByteSize("mcactors.volume.size", 256 * Mib)!;
        await output.WriteLineAsync($"re-protected {primary.Options.Name} from an empty disk: {bytes / (double)Mib:0} MiB in {copyTime.TotalSeconds:0.0} s " +
            $"({restartedAt.Elapsed.TotalSeconds:0.0} s after the restart)");
        return (timeline, bytes / (double)Mib / copyTime.TotalSeconds);
    }

    /// <summary>A store with 64 MiB overwritten in epoch 2 after committed checkpoint 1 (the case of a secondary promoted while epoch 2 was open), rolled back to 1; timed with its final fsync.</summary>
    private static double MeasureRollback64MiB(string directory)
    {
        const long dirty = 64 * Mib;
        const int chunk = 1 << 20;
        Directory.CreateDirectory(directory);
        var data = new byte[chunk];
        new Random(20_251_125).NextBytes(data);
        using var store = RollbackStore.Create(directory, VolumeDescriptor.New(2 * dirty, VolumeDescriptor.DefaultBlockSize));
        for (long offset = 0; offset < dirty; offset += chunk)
            store.Write(1, offset, data);
        store.Prepare(1);
        store.Commit(1);
        data.AsSpan().Reverse();
        for (long offset = 0; offset < dirty; offset += chunk)
            store.Write(2, offset, data);
        store.Prepare(2);
        var clock = Stopwatch.StartNew();
        var result = store.RollbackTo(1);
        var ms = clock.Elapsed.TotalMilliseconds;
        if (result.BytesRestored != dirty)
            throw new BenchFailedException($"rollback restored {result.BytesRestored} B, expected {dirty}");
        var check = new byte[chunk];
        store.Read(dirty - chunk, check);
        data.AsSpan().Reverse();
        if (!check.AsSpan().SequenceEqual(data))
            throw new BenchFailedException("after the rollback to checkpoint 1 the image does not hold checkpoint 1's data");
        return ms;
    }

    private static double Median(IEnumerable<FailoverTimeline> timelines, Func<FailoverTimeline, double?> value) =>
        BenchStatistics.Median(timelines.Select(value).OfType<double>());
}
