namespace McActors.Node.Bench.Nbd;

/// <summary>What <c>bench nbd</c> does.</summary>
/// <param name="Runtime">Measured time of each fio run (after <paramref name="Ramp"/>, which is not measured).</param>
/// <param name="Workloads">A subset of <see cref="FioWorkload.All"/>, in its order.</param>
/// <param name="Keep">Keep the work directory (images, node and server logs, fio reports) and print its path.</param>
/// <param name="Overrides">HOCON settings for the McActors nodes.</param>
public sealed record NbdBenchSettings(TimeSpan Runtime, TimeSpan Ramp, IReadOnlyList<FioWorkload> Workloads, bool Keep, IReadOnlyList<string> Overrides);

/// <summary>
/// <c>bench nbd</c>: fio's NBD engine runs the same workloads, one after the other, against three
/// NBD servers running side by side on this machine — P1 (qemu-nbd on a raw file, no replication),
/// P2 (QEMU's synchronous mirror to a second qemu-nbd) and McActors (primary + secondary, 100 ms
/// epochs, every acknowledged FLUSH committed on the secondary). Each workload is run on every
/// target before the next starts, so that a slow spell of this shared machine hits all three alike.
/// </summary>
public static class NbdBench
{
    /// <summary>The 100 ms epochs the comparison is specified with (a --set may still override it).</summary>
    private const string EpochInterval = "mcactors.checkpoint.epoch-interval = 100 ms";

    private static readonly TimeSpan StatusTimeout = TimeSpan.FromSeconds(5);

    public static Task<BenchReport> RunAsync(NbdBenchSettings settings, TextWriter output, CancellationToken cancel) =>
        BenchWorkDirectory.UseAsync("nbd", settings.Keep, output, work => MeasureAsync(settings, work, output, cancel));

    private static async Task<BenchReport> MeasureAsync(NbdBenchSettings settings, string work, TextWriter output, CancellationToken cancel)
    {
        // Every tool is looked up first: a missing one fails in a second, not after the cluster started.
        foreach (var tool in new[] { BenchTool.Fio, BenchTool.QemuNbd, BenchTool.QemuImg, BenchTool.StorageDaemon })
            tool.Locate();
        await using var mcactors = await McActorsTarget.StartAsync(Path.Combine(work, "mcactors"), [EpochInterval, .. settings.Overrides], cancel);
        await using var p1 = await QemuNbdTarget.StartAsync("p1", "qemu-nbd on a raw file", Path.Combine(work, "p1"), mcactors.SizeBytes, cancel);
        await using var p2 = await MirroredQemuTarget.StartAsync(Path.Combine(work, "p2"), mcactors.SizeBytes, cancel);
        INbdBenchTarget[] targets = [p1, p2, mcactors];
        foreach (var target in targets)
            await output.WriteLineAsync($"{target.Name,-8} {target.Uri,-26} {target.Description}");
        await output.WriteLineAsync($"volume {mcactors.SizeBytes >> 20} MiB; fio --ioengine=nbd, {settings.Ramp.TotalSeconds:0.#} s ramp + {settings.Runtime.TotalSeconds:0.#} s per run");

        var report = new BenchReport();
        foreach (var workload in settings.Workloads)
        {
            var results = new Dictionary<string, FioResult>();
            CommitLatencyReading? commits = null;
            foreach (var target in targets)
            {
                // Only McActors' run window: the checkpoints committed while fio ran against it (ramp included).
                var probe = target == mcactors ? mcactors.StartCommitLatency() : null;
                var result = await Fio.RunAsync(workload, target.Uri, mcactors.SizeBytes, settings.Runtime, settings.Ramp,
                    Path.Combine(work, $"{workload.Name}-{target.Name}.json"), cancel);
                results[target.Name] = result;
                if (probe is not null)
                    commits = await probe.ReadAsync(StatusTimeout, cancel);
                await output.WriteLineAsync($"{workload.Name} {workload.Description,-36} {target.Name,-8} " +
                    $"{result.MibPerSecond,8:0.0} MiB/s {result.Iops,8:0} IOPS  p50 {result.P50Us,7:0} us  p99 {result.P99Us,7:0} us" +
                    (result.FlushP99Us is { } flush ? $"  flush p99 {flush:0} us" : "") +
                    (probe is not null && commits is { } c ? $"  commit p50 {c.P50Us:0} us p99 {c.P99Us:0} us" : ""));
            }
            AddRows(report, workload, results, commits ?? throw new InvalidOperationException("the McActors target ran no fio job"));
        }
        // Numbers taken after the secondary left would be those of a primary alone.
        await mcactors.VerifyStillReplicatedAsync();
        return report;
    }

    /// <summary>
    /// Rows <c>W_target_measure</c> and the ratios of McActors' MiB/s to P1's and P2's. Targets: ahead
    /// of P2 everywhere; at least 0.7x P1, or 0.5x P1 for a workload that flushes. And McActors'
    /// checkpoint commit latency (close → persisted on the secondary) as the coordinator measured it.
    /// </summary>
    private static void AddRows(BenchReport report, FioWorkload workload, IReadOnlyDictionary<string, FioResult> results, CommitLatencyReading commits)
    {
        foreach (var (target, r) in results)
        {
            var prefix = $"{workload.Name}_{target}";
            report.Add($"{prefix}_mib_s", r.MibPerSecond, "MiB/s", 1);
            report.Add($"{prefix}_iops", r.Iops, "IOPS", 0);
            report.Add($"{prefix}_p50_us", r.P50Us, "us", 0);
            report.Add($"{prefix}_p99_us", r.P99Us, "us", 0);
            if (r.FlushP99Us is { } flush)
                report.Add($"{prefix}_flush_p99_us", flush, "us", 0);
        }
        report.Add($"{workload.Name}_mcactors_commit_p50_us", commits.P50Us, "us", 0);
        report.Add($"{workload.Name}_mcactors_commit_p99_us", commits.P99Us, "us", 0);
        var mine = results["mcactors"].MibPerSecond;
        report.Add($"{workload.Name}_ratio_p1", mine / results["p1"].MibPerSecond, "x", 2,
            BenchTarget.AtLeast(workload.FlushEvery is null ? 0.7 : 0.5));
        report.Add($"{workload.Name}_ratio_p2", mine / results["p2"].MibPerSecond, "x", 2, BenchTarget.AtLeast(1.0));
    }
}
