using System.Diagnostics;
using McActors.Configuration;
using McActors.Guests;
using McActors.Node.LocalCluster;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Node.Bench;

// One file over ~400 lines on purpose: `bench replication` is one measurement script (two clusters,
// the same phases on each); each phase is one method, in the order it runs and prints.

/// <summary>How long <c>bench replication</c> runs, and whether it keeps its clusters' directories.</summary>
/// <param name="Quick">Every phase ~2-3 s instead of ~10 s, a smaller transport round: a smoke test, same rows.</param>
/// <param name="Keep">Leave the work directory (clusters' node.log files, images) in place and print its path.</param>
/// <param name="Overrides">Extra <c>key=value</c> settings for every node of both clusters (experiments: what if the scheduler ticked faster?).</param>
public sealed record ReplicationBenchSettings(bool Quick, bool Keep, IReadOnlyList<string> Overrides);

/// <summary>
/// <c>bench replication</c>: the whole replicated device on this machine, as local clusters of OS
/// processes (arbiter, primary, secondary) on 127.0.0.1.
/// <list type="bullet">
/// <item>(0) idle-cluster: <c>up</c>'s default cluster with no client writing: CPU of every node, what an idle deployment costs;</item>
/// <item>(1) idle: a guest that never writes, epochs closed as fast as the pipeline allows: checkpoints/s and commit latency, the checkpoint protocol's own cost;</item>
/// <item>(2) loaded: the synthetic guest writing as fast as it can, 100 ms epochs: commit latency, guest throughput, write amplification (from /proc/PID/io), the secondary's memory;</item>
/// <item>(3) unreplicated baseline, right after (2): the same workload written serially to a plain image in this process, flushed every epoch interval;</item>
/// <item>(4) the data plane against Akka.Remote, the same stream side by side.</item>
/// </list>
/// Row names do not change with <c>--quick</c>.
/// </summary>
public static class ReplicationBench
{
    // ---- Phases -----------------------------------------------------------------------------

    private static readonly TimeSpan RolesTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StatusTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(1);

    /// <summary>Before measuring: JIT, first-touch of the image files, the pipeline filling up.</summary>
    private static TimeSpan WarmUp(bool quick) => TimeSpan.FromSeconds(quick ? 1.5 : 3);

    /// <summary>
    /// (2) warms up longer: until the guest has written every block of both sparse images at least once
    /// (filling a hole costs an allocation), the guest runs at about half its later speed here; the
    /// baseline (3) gets past that point within its own warm-up, so both are measured on a filled volume.
    /// </summary>
    private static TimeSpan LoadedWarmUp(bool quick) => TimeSpan.FromSeconds(quick ? 1.5 : 8);

    private static TimeSpan Measured(bool quick) => TimeSpan.FromSeconds(quick ? 3 : 10);

    /// <summary>(0) is CPU over a few seconds of 100 ms epochs (a few dozen checkpoints): shorter would be mostly noise of the status polls.</summary>
    private static TimeSpan IdleClusterMeasured(bool quick) => TimeSpan.FromSeconds(quick ? 5 : 10);

    /// <summary>(0): <c>up</c>'s defaults (100 ms epochs from reference.conf) with nothing writing.</summary>
    private static readonly string[] IdleClusterOverrides = ["mcactors.guest.write-limit = 0"];

    /// <summary>(1): the guest makes no writes; the coordinator's timer fires every 1 ms, so an epoch closes whenever fewer than max-in-flight are open.</summary>
    private static readonly string[] IdleOverrides =
    [
        "mcactors.guest.write-limit = 0",
        "mcactors.checkpoint.epoch-interval = 1ms",
    ];

    /// <summary>
    /// (1b): the same idle guest at a fixed 10 ms epoch interval: commit latency of a checkpoint that
    /// does not queue behind others (at the maximum rate of (1) every commit waits behind up to
    /// max-in-flight - 1 others, so rate and latency are measured apart).
    /// </summary>
    private static readonly string[] IdlePacedOverrides =
    [
        "mcactors.guest.write-limit = 0",
        "mcactors.checkpoint.epoch-interval = 10ms",
    ];

    /// <summary>(2): default epochs (100 ms), no write limit, a deeper guest window so the guest, not its window, is the limit.</summary>
    private const int LoadedMaxOutstanding = 16;

    private static readonly string[] LoadedOverrides = [$"mcactors.guest.max-outstanding = {LoadedMaxOutstanding}"];

    /// <summary>(3) flushes its image this often: the epoch boundaries of (2).</summary>
    private static readonly TimeSpan BaselineFlushInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>(4): MiB per round over the data plane (Akka.Remote gets a quarter) and timed rounds after the warm-up one.</summary>
    private static long TransportBytes(bool quick) => (quick ? 128L : 1024L) << 20;

    private static int TransportRounds(bool quick) => quick ? 1 : ReplicationTransport.DefaultRounds;

    // ---- Targets ----------------------------------------------------------------------------

    private static readonly BenchTarget IdleCheckpointsTarget = BenchTarget.AtLeast(200);
    private static readonly BenchTarget IdleCommitP99Target = BenchTarget.AtMost(5);
    private static readonly BenchTarget LoadedCommitP99Target = BenchTarget.AtMost(50);
    private static readonly BenchTarget ThroughputRatioTarget = BenchTarget.AtLeast(0.3);

    /// <summary>Issue 12: a checkpoint should cost tens of microseconds of CPU over all nodes, not milliseconds.</summary>
    private static readonly BenchTarget CpuPerCheckpointTarget = BenchTarget.AtMost(0.3);

    /// <summary>The secondary writes each byte to its image and, on a block's first touch in an epoch, the old content to the rollback log: at most 2x, plus headers.</summary>
    private static readonly BenchTarget SecondaryWriteAmpTarget = BenchTarget.AtMost(2.1);

    /// <summary>Issue 12: an idle cluster (all its processes together) should use at most 5% of one core.</summary>
    private static readonly BenchTarget IdleClusterCpuTarget = BenchTarget.AtMost(5);


    private const double MiB = 1 << 20;

    public static async Task<BenchReport> RunAsync(ReplicationBenchSettings settings, TextWriter output, CancellationToken cancel)
    {
        var config = McActorsSettings.From(HoconFiles.Load());
        var work = Directory.CreateTempSubdirectory("mcactors-bench-replication-").FullName;
        var clock = Stopwatch.StartNew();
        var keep = settings.Keep;
        var report = new BenchReport();
        await output.WriteLineAsync($"bench replication{(settings.Quick ? " --quick" : "")}: work directory {work}, {Environment.ProcessorCount} CPUs, load average before start {ReplicationProcStats.ReadLoadAverage()?.ToString("0.00") ?? "?"}, volume {config.VolumeSize / MiB:0} MiB");
        try
        {
            if (settings.Overrides.Count > 0)
                await Log(output, clock, $"every node also gets: {string.Join(", ", settings.Overrides)}");
            await IdleClusterAsync(Path.Combine(work, "idle-cluster"), settings, report, output, clock, cancel);
            await IdleAsync(Path.Combine(work, "idle"), settings, report, output, clock, cancel);
            await IdlePacedAsync(Path.Combine(work, "idle-paced"), settings, report, output, clock, cancel);
            var replicated = await LoadedAsync(Path.Combine(work, "loaded"), settings, report, output, clock, cancel);
            var unreplicated = await Task.Run(() => Baseline(Path.Combine(work, "baseline"), config, settings.Quick, output, clock, cancel), cancel);
            report.Add("unreplicated_throughput_mib_s", unreplicated.MebibytesPerSecond, "MiB/s", 1);
            report.Add("guest_throughput_ratio", replicated / unreplicated.MebibytesPerSecond, "x", 2, ThroughputRatioTarget);
            report.Add("guest_state_capture_ms", unreplicated.CaptureMs, "ms", 2);
            report.Add("guest_state_mib", unreplicated.StateBytes / MiB, "MiB", 2);

            await Log(output, clock, $"transport: data plane vs Akka.Remote, {TransportBytes(settings.Quick) >> 20} MiB per round, 1 warm-up + {TransportRounds(settings.Quick)} rounds");
            var transport = await ReplicationTransport.CompareAsync(TransportBytes(settings.Quick), TransportRounds(settings.Quick), output, cancel);
            transport.AddTo(report);
        }
        catch (BenchFailedException)
        {
            keep = true; // the node.log files say why
            throw;
        }
        finally
        {
            if (keep)
                await output.WriteLineAsync($"kept {work} (node.log of each node under idle/ and loaded/)");
            else
                TryDelete(work);
        }
        return report;
    }

    // ---- (0) idle cluster ---------------------------------------------------------------------

    private static async Task IdleClusterAsync(string dir, ReplicationBenchSettings settings, BenchReport report, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        const string phase = "idle-cluster";
        await Log(output, clock, $"{phase}: cluster with {string.Join(", ", IdleClusterOverrides)}");
        await using var cluster = await StartAsync(dir, [.. IdleClusterOverrides, .. settings.Overrides], output, clock, cancel);
        var status = await StatusAsync(cluster, cancel);
        var (arbiter, primary, secondary) = (cluster.Nodes[0], cluster.Node(status.Primary!), cluster.Node(status.Secondaries[0]));
        var run = await MeasureAsync(cluster, phase, WarmUp(settings.Quick), IdleClusterMeasured(settings.Quick), [primary, secondary, arbiter], output, clock, cancel);
        // The cluster's processes only: the bench (observer, status polls) is reported apart, in _bench.
        if (run.NodeCpuSeconds is not { } cpu)
            throw new BenchFailedException($"{phase}: /proc/PID/stat of the nodes is not readable on this system");
        report.Add("idle_cluster_cpu_pct", 100 * cpu / run.Elapsed.TotalSeconds, $"% of 1 CPU ({Environment.ProcessorCount})", 1, IdleClusterCpuTarget);
        AddCpu(report, "idle_cluster", run, decimals: 1); // a few % per process: whole percents would hide it
        await Log(output, clock, $"{phase}: stopping the cluster");
    }

    // ---- (1) idle -----------------------------------------------------------------------------

    private static async Task IdleAsync(string dir, ReplicationBenchSettings settings, BenchReport report, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        var run = await IdleRunAsync(dir, "idle", IdleOverrides, settings, output, clock, cancel);
        report.Add("checkpoints_per_s_idle", run.CheckpointsPerSecond, "ckpt/s", 1, IdleCheckpointsTarget);
        report.Add("commit_p50_ms_idle_saturated", run.End.CommitP50Ms, "ms", 2);
        report.Add("commit_p99_ms_idle_saturated", run.End.CommitP99Ms, "ms", 2);
        report.Add("idle_in_flight_avg", run.InFlightAverage, "ckpt", 2);
        AddCpu(report, "idle", run);
        // The bench process (observer, status polls) is left out: it is not part of a deployment.
        if (run.NodeCpuSeconds is { } cpu && run.CheckpointsCommitted > 0)
            report.Add("cpu_ms_per_checkpoint", 1000 * cpu / run.CheckpointsCommitted, "ms CPU (all nodes)", 2, CpuPerCheckpointTarget);
    }

    private static async Task IdlePacedAsync(string dir, ReplicationBenchSettings settings, BenchReport report, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        var run = await IdleRunAsync(dir, "idle-paced", IdlePacedOverrides, settings, output, clock, cancel);
        report.Add("commit_p50_ms_idle", run.End.CommitP50Ms, "ms", 2);
        report.Add("commit_p99_ms_idle", run.End.CommitP99Ms, "ms", 2, IdleCommitP99Target);
        report.Add("checkpoints_per_s_idle_paced", run.CheckpointsPerSecond, "ckpt/s", 1);
    }

    /// <summary>One idle cluster (a guest that never writes) with these overrides, measured after its warm-up.</summary>
    private static async Task<ClusterRun> IdleRunAsync(string dir, string phase, string[] overrides, ReplicationBenchSettings settings,
        TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        await Log(output, clock, $"{phase}: cluster with {string.Join(", ", overrides)}");
        await using var cluster = await StartAsync(dir, [.. overrides, .. settings.Overrides], output, clock, cancel);
        var status = await StatusAsync(cluster, cancel);
        var (arbiter, primary, secondary) = (cluster.Nodes[0], cluster.Node(status.Primary!), cluster.Node(status.Secondaries[0]));
        var run = await MeasureAsync(cluster, phase, WarmUp(settings.Quick), Measured(settings.Quick), [primary, secondary, arbiter], output, clock, cancel);
        await Log(output, clock, $"{phase}: stopping the cluster");
        return run;
    }

    // ---- (2) loaded ---------------------------------------------------------------------------

    /// <summary>Returns the guest's replicated throughput, MiB/s.</summary>
    private static async Task<double> LoadedAsync(string dir, ReplicationBenchSettings settings, BenchReport report, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        await Log(output, clock, $"loaded: cluster with {string.Join(", ", LoadedOverrides)}, guest writing without limit");
        await using var cluster = await StartAsync(dir, [.. LoadedOverrides, .. settings.Overrides], output, clock, cancel);
        var status = await StatusAsync(cluster, cancel);
        var (arbiter, primary, secondary) = (cluster.Nodes[0], cluster.Node(status.Primary!), cluster.Node(status.Secondaries[0]));
        var run = await MeasureAsync(cluster, "loaded", LoadedWarmUp(settings.Quick), Measured(settings.Quick), [primary, secondary, arbiter], output, clock, cancel);

        var bytes = (double)(run.End.BytesCommitted - run.Start.BytesCommitted);
        if (bytes <= 0)
            throw new BenchFailedException($"loaded: no guest bytes committed in {run.Elapsed.TotalSeconds:0.0} s; see {primary.LogPath}");
        var throughput = bytes / MiB / run.Elapsed.TotalSeconds;
        // The coordinator's window is its last 1000 commits; at 10 per second it still holds commits
        // from before the measured interval (start-up, first touch of the sparse images). Say how many.
        var windowed = Math.Min(1000, run.End.CheckpointsCommitted);
        var measuredCommits = run.End.CheckpointsCommitted - run.Start.CheckpointsCommitted;
        await Log(output, clock, $"loaded: commit latency window = last {windowed} commits, {Math.Max(0, windowed - measuredCommits)} of them before the measured interval");
        report.Add("commit_p50_ms_loaded", run.End.CommitP50Ms, "ms", 2);
        report.Add("commit_p99_ms_loaded", run.End.CommitP99Ms, "ms", 2, LoadedCommitP99Target);
        report.Add("guest_throughput_mib_s", throughput, "MiB/s", 1);

        var (primaryIo, secondaryIo) = (run.Io[0], run.Io[1]);
        if (primaryIo is null || secondaryIo is null)
            throw new BenchFailedException("loaded: /proc/PID/io of the nodes is not readable on this system");
        // No target on the primary's: write_bytes counts a page when it turns dirty, and the primary never
        // fsyncs its image while running, so rewrites of still-dirty pages (the whole 256 MiB volume stays
        // in the page cache) are not counted and the row falls toward 0. write_syscall_amp_primary
        // (~1.0: one pwrite per guest byte) is the number to compare; the secondary fsyncs every epoch,
        // so its write_bytes does count rewrites.
        report.Add("write_amp_primary", primaryIo.Value.WriteBytes / bytes, "x", 2);
        report.Add("write_amp_secondary", secondaryIo.Value.WriteBytes / bytes, "x", 2, SecondaryWriteAmpTarget);
        report.Add("write_syscall_amp_primary", primaryIo.Value.WriteChars / bytes, "x", 2);
        report.Add("write_syscall_amp_secondary", secondaryIo.Value.WriteChars / bytes, "x", 2);
        await Log(output, clock,
            $"loaded: {bytes / MiB:0.0} MiB committed; write_bytes primary {primaryIo.Value.WriteBytes / MiB:0.0} MiB, secondary {secondaryIo.Value.WriteBytes / MiB:0.0} MiB " +
            $"(cancelled {primaryIo.Value.CancelledWriteBytes / MiB:0.0} / {secondaryIo.Value.CancelledWriteBytes / MiB:0.0} MiB); " +
            $"wchar (file writes; socket sends are not counted) primary {primaryIo.Value.WriteChars / MiB:0.0} MiB, secondary {secondaryIo.Value.WriteChars / MiB:0.0} MiB");

        var secondaryMemory = ReplicationProcStats.ReadMemory(secondary.Pid)
            ?? throw new BenchFailedException($"loaded: /proc/{secondary.Pid}/status of the secondary is not readable");
        var primaryMemory = ReplicationProcStats.ReadMemory(primary.Pid);
        report.Add("secondary_rss_mib", secondaryMemory.RssBytes / MiB, "MiB", 1);
        report.Add("secondary_peak_rss_mib", secondaryMemory.PeakRssBytes / MiB, "MiB", 1);
        if (primaryMemory is { } pm)
            report.Add("primary_rss_mib", pm.RssBytes / MiB, "MiB", 1);

        report.Add("loaded_checkpoints_per_s", run.CheckpointsPerSecond, "ckpt/s", 1);
        report.Add("loaded_in_flight_avg", run.InFlightAverage, "ckpt", 2);
        AddCpu(report, "loaded", run);
        await Log(output, clock, "loaded: stopping the cluster");
        return throughput;
    }

    /// <summary>Info rows: CPU used by primary, secondary and arbiter (the coordinator's host) over the measured interval, and by this process (observer, bench).</summary>
    private static void AddCpu(BenchReport report, string phase, ClusterRun run, int decimals = 0)
    {
        string[] names = ["primary", "secondary", "arbiter"];
        for (var i = 0; i < names.Length && i < run.Cpu.Count; i++)
        {
            if (run.Cpu[i] is { } seconds)
                report.Add($"{phase}_cpu_pct_{names[i]}", 100 * seconds / run.Elapsed.TotalSeconds, $"% of 1 CPU ({Environment.ProcessorCount})", decimals);
        }
        report.Add($"{phase}_cpu_pct_bench", 100 * run.OwnCpuSeconds / run.Elapsed.TotalSeconds, $"% of 1 CPU ({Environment.ProcessorCount})", decimals);
    }

    // ---- (3) unreplicated baseline ------------------------------------------------------------

    /// <summary>The guest's workload (same seed, volume, block size) straight into a plain image, one write at a time, a flush per epoch interval. MiB/s.</summary>
    private static BaselineResult Baseline(string dir, McActorsSettings config, bool quick, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        Directory.CreateDirectory(dir);
        var warmUp = WarmUp(quick);
        var measured = Measured(quick);
        output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:0.0}s] unreplicated: seed {config.GuestSeed} workload into a plain {config.VolumeSize / MiB:0} MiB image, flush every {BaselineFlushInterval.TotalMilliseconds:0} ms, {warmUp.TotalSeconds:0.#} s warm-up + {measured.TotalSeconds:0} s");
        using var image = VolumeImage.Create(Path.Combine(dir, "volume.img"), config.VolumeSize);
        var workload = new SyntheticWorkload(config.GuestSeed, config.VolumeSize, config.BlockSize);
        var buffer = new byte[workload.MaxWriteLength];
        var run = Stopwatch.StartNew();
        var nextFlush = BaselineFlushInterval;
        long startBytes = -1;
        var startTime = TimeSpan.Zero;
        var flushes = 0;
        while (true)
        {
            var now = run.Elapsed;
            if (startBytes < 0 && now >= warmUp)
            {
                startBytes = workload.BytesWritten;
                startTime = now;
            }
            if (now >= warmUp + measured)
                break;
            cancel.ThrowIfCancellationRequested();
            var write = workload.NextWrite(buffer);
            image.Write(write.Offset, buffer.AsSpan(0, write.Length));
            if (run.Elapsed >= nextFlush)
            {
                image.Flush();
                flushes++;
                nextFlush = run.Elapsed + BaselineFlushInterval;
            }
        }
        image.Flush();
        var elapsed = run.Elapsed - startTime;
        var throughput = (workload.BytesWritten - startBytes) / MiB / elapsed.TotalSeconds;
        output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:0.0}s] unreplicated: {throughput:0.0} MiB/s ({workload.WriteCount} writes, {flushes} flushes)");

        // What every checkpoint close costs the primary while its guest is paused: capturing the
        // guest's state, whose version table grows with the blocks touched (by now nearly all).
        var captures = new List<double>();
        var blob = 0;
        for (var i = 0; i < CaptureRounds; i++)
        {
            var timer = Stopwatch.StartNew();
            blob = workload.Capture(i).Length;
            captures.Add(timer.Elapsed.TotalMilliseconds);
        }
        var captureMs = captures.Order().ElementAt(captures.Count / 2);
        output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:0.0}s] guest state capture with {workload.BlocksTouched} blocks touched: {captureMs:0.00} ms (median of {CaptureRounds}), {blob / MiB:0.00} MiB blob");
        return new BaselineResult(throughput, captureMs, blob, workload.BlocksTouched);
    }

    private const int CaptureRounds = 7;

    private sealed record BaselineResult(double MebibytesPerSecond, double CaptureMs, int StateBytes, int BlocksTouched);

    // ---- shared -------------------------------------------------------------------------------

    /// <summary>What one measured interval of a cluster gave: statuses at both ends, and per watched node the deltas of its I/O and CPU seconds.</summary>
    private sealed record ClusterRun(
        CoordinatorStatus Start,
        CoordinatorStatus End,
        TimeSpan Elapsed,
        double InFlightAverage,
        IReadOnlyList<ProcessIo?> Io,
        IReadOnlyList<double?> Cpu,
        double OwnCpuSeconds)
    {
        public long CheckpointsCommitted => End.CheckpointsCommitted - Start.CheckpointsCommitted;

        public double CheckpointsPerSecond => CheckpointsCommitted / Elapsed.TotalSeconds;

        /// <summary>CPU seconds of all watched nodes together, or null if one of them was not readable.</summary>
        public double? NodeCpuSeconds => Cpu.All(c => c is not null) ? Cpu.Sum(c => c!.Value) : null;
    }

    private static async Task<LocalCluster.LocalCluster> StartAsync(string dir, IReadOnlyList<string> overrides, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        LocalCluster.LocalCluster cluster;
        try
        {
            cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, 2, overrides));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bad --set lands here (the observer's actor system refuses it): say so, not a stack trace.
            throw new BenchFailedException($"cannot start a local cluster in {dir}: {e.GetBaseException().Message}");
        }
        try
        {
            CoordinatorStatus roles;
            try
            {
                roles = await cluster.WaitForRolesAsync(RolesTimeout, cancel);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                throw new BenchFailedException(e.Message);
            }
            cluster.UpdateTopology(roles);
            await Log(output, clock, $"  roles: primary {roles.Primary}, secondary {roles.Secondaries[0]} (generation {roles.Generation})");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Warm-up, then the measured interval with a status sample (and a progress line) every second.</summary>
    private static async Task<ClusterRun> MeasureAsync(LocalCluster.LocalCluster cluster, string phase, TimeSpan warmUp, TimeSpan measured,
        IReadOnlyList<LocalNodeProcess> watched, TextWriter output, Stopwatch clock, CancellationToken cancel)
    {
        await Log(output, clock, $"{phase}: {warmUp.TotalSeconds:0.#} s warm-up, then {measured.TotalSeconds:0} s measured");
        await Task.Delay(warmUp, cancel);

        // Percentiles from here on describe the measured interval only, not start-up.
        var latency = CommitLatencyProbe.Start(cluster.Observer, cluster.DataDirectory);
        var start = await StatusAsync(cluster, cancel);
        var ioStart = watched.Select(n => ReplicationProcStats.ReadIo(n.Pid)).ToList();
        var cpuStart = watched.Select(n => ReplicationProcStats.ReadCpuSeconds(n.Pid)).ToList();
        var ownCpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        var run = Stopwatch.StartNew();
        var previous = (Time: TimeSpan.Zero, start.CheckpointsCommitted, start.BytesCommitted);
        var inFlight = new List<int>();
        while (run.Elapsed + SampleInterval / 2 < measured)
        {
            var wait = TimeSpan.FromTicks(Math.Min(SampleInterval.Ticks, (measured - run.Elapsed).Ticks));
            if (wait > TimeSpan.Zero)
                await Task.Delay(wait, cancel);
            CoordinatorStatus sample;
            try
            {
                sample = await cluster.Observer.StatusAsync(StatusTimeout);
            }
            catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
            {
                await Log(output, clock, $"{phase}: coordinator did not answer in {StatusTimeout.TotalSeconds:0} s");
                continue;
            }
            Check(cluster, start, sample, phase);
            inFlight.Add(sample.InFlight);
            var seconds = (run.Elapsed - previous.Time).TotalSeconds;
            await Log(output, clock,
                $"{phase}: epoch {sample.LastCommitted,6}  {(sample.CheckpointsCommitted - previous.CheckpointsCommitted) / seconds,6:0.0} ckpt/s  " +
                $"commit p50 {sample.CommitP50Ms,6:0.00} ms p99 {sample.CommitP99Ms,6:0.00} ms  " +
                $"{(sample.BytesCommitted - previous.BytesCommitted) / MiB / seconds,7:0.0} MiB/s  in flight {sample.InFlight}");
            previous = (run.Elapsed, sample.CheckpointsCommitted, sample.BytesCommitted);
        }
        // The end sample: the measured interval ends here, and the status carries the latency window of the last 1000 commits.
        var end = (await latency.ReadAsync(StatusTimeout, cancel)).Status;
        var elapsed = run.Elapsed;
        var ioEnd = watched.Select(n => ReplicationProcStats.ReadIo(n.Pid)).ToList();
        var cpuEnd = watched.Select(n => ReplicationProcStats.ReadCpuSeconds(n.Pid)).ToList();
        var ownCpu = (Process.GetCurrentProcess().TotalProcessorTime - ownCpuStart).TotalSeconds;
        Check(cluster, start, end, phase);
        var io = ioStart.Zip(ioEnd, (a, b) => a is { } x && b is { } y ? y - x : (ProcessIo?)null).ToList();
        var cpu = cpuStart.Zip(cpuEnd, (a, b) => a is { } x && b is { } y ? y - x : (double?)null).ToList();
        var average = inFlight.Count == 0 ? end.InFlight : inFlight.Average();
        return new ClusterRun(start, end, elapsed, average, io, cpu, ownCpu);
    }

    /// <summary>The numbers mean nothing if the replica set changed under the measurement.</summary>
    private static void Check(LocalCluster.LocalCluster cluster, CoordinatorStatus start, CoordinatorStatus now, string phase)
    {
        if (cluster.Nodes.FirstOrDefault(n => n.HasExited) is { } dead)
            throw new BenchFailedException($"{phase}: node {dead.Options.Name} exited; see {dead.LogPath}");
        if (now.Generation != start.Generation || now.Primary != start.Primary || now.Degraded)
            throw new BenchFailedException(
                $"{phase}: the replica set changed while measuring (generation {start.Generation} -> {now.Generation}, primary {now.Primary ?? "none"}, " +
                $"{now.Secondaries.Count} secondaries{(now.Degraded ? ", degraded" : "")}); see the node.log files under {cluster.DataDirectory}");
    }

    private static Task<CoordinatorStatus> StatusAsync(LocalCluster.LocalCluster cluster, CancellationToken cancel) =>
        BenchStatus.ReadAsync(cluster.Observer, cluster.DataDirectory, StatusTimeout, cancel);

    private static Task Log(TextWriter output, Stopwatch clock, string line) =>
        output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,6:0.0}s] {line}");

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"could not remove {directory}: {e.Message}");
        }
    }
}
