using System.Diagnostics;
using System.Text.Json;
using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

/// <summary>Real node processes on 127.0.0.1, started through the real CLI.</summary>
[Collection(nameof(LocalClusterTests))] // one multi-process cluster at a time on a 2-core machine
public sealed class LocalClusterTests
{
    [Fact]
    public void Demo_fails_over_from_a_killed_primary_and_verifies_the_new_primary_and_the_in_sync_secondaries()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-demo-test-{Guid.NewGuid():N}");
        var json = dir + ".json";
        try
        {
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(4),
                "demo", "--duration", "10", "--kill-primary-at", "3", "--epoch-ms", "50", "--data-dir", dir, "--json", json);
            Assert.True(exit == 0, $"demo exited {exit}\n{output}\n{error}\n{NodeLogs(dir)}");
            Assert.Contains("VERIFIED", output);
            Assert.Contains("SIGKILL to the primary", output);
            Assert.Contains("resumed", output);
            using var summary = JsonDocument.Parse(File.ReadAllText(json));
            var root = summary.RootElement;
            Assert.True(root.GetProperty("verified").GetBoolean());
            var failover = root.GetProperty("failover");
            Assert.True(failover.GetProperty("happened").GetBoolean(), output);
            Assert.InRange(failover.GetProperty("total_ms").GetDouble(), 1, 30_000);
            Assert.True(failover.GetProperty("rolled_back_epochs").GetInt64() >= 0, output);
            // The new primary is not the killed one, and it went on committing after the failover.
            Assert.NotEqual(failover.GetProperty("from").GetString(), root.GetProperty("primary").GetString());
            Assert.True(root.GetProperty("last_committed_epoch").GetInt64() > failover.GetProperty("target_checkpoint").GetInt64(), output);
            Assert.True(root.GetProperty("checkpoints_committed").GetInt64() > 20, output);
        }
        finally
        {
            File.Delete(json);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Demo_without_failover_verifies_both_replicas()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-demo-test-{Guid.NewGuid():N}");
        var json = dir + ".json";
        try
        {
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(3),
                "demo", "--duration", "4", "--kill-primary-at", "0", "--replicas", "2", "--epoch-ms", "50", "--data-dir", dir, "--json", json);
            Assert.True(exit == 0, $"demo exited {exit}\n{output}\n{error}\n{NodeLogs(dir)}");
            using var summary = JsonDocument.Parse(File.ReadAllText(json));
            var root = summary.RootElement;
            Assert.True(root.GetProperty("verified").GetBoolean());
            Assert.False(root.GetProperty("failover").GetProperty("happened").GetBoolean(), output);
            // The secondary is verified too, unless it was dropped as too slow on a loaded machine: then
            // the demo must have said so (DEGRADED) and verified the primary alone.
            var secondaries = root.GetProperty("secondaries").GetArrayLength();
            Assert.True(secondaries == 1 ? root.GetProperty("detail").GetString()!.Contains("1 secondary") : output.Contains("DEGRADED"), output);
            Assert.True(root.GetProperty("last_committed_epoch").GetInt64() > 10, output);
        }
        finally
        {
            File.Delete(json);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Chaos_ten_seeded_runs_all_pass_the_invariant_checks()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-chaos-test-{Guid.NewGuid():N}");
        var passed = false;
        try
        {
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(10),
                "chaos", "--runs", "10", "--seed", ChaosTests.FixedSeed.ToString(), "--data-dir", dir);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.True(exit == 0, $"chaos exited {exit}\n{output}\n{error}");
            Assert.Equal("10 passed, 0 failed", lines[^1]);
            passed = true;
            var runs = lines.Where(l => l.StartsWith("run ", StringComparison.Ordinal)).ToList();
            Assert.Equal(10, runs.Count);
            Assert.All(runs, r => Assert.Contains(" PASS (", r));
            // Each run names its seed; the first is the series' own, so it replays with --seed.
            Assert.StartsWith($"run 1/10 seed {ChaosTests.FixedSeed} ", runs[0]);
            // Passed runs leave nothing behind.
            Assert.False(Directory.Exists(dir) && Directory.EnumerateDirectories(dir).Any(), $"run directories left in {dir}");
        }
        finally
        {
            // A failed run's node logs stay (the output names the directory).
            if (passed && Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Bench_failover_one_run_writes_every_named_row()
    {
        var (rows, output) = BenchRun.Run(TimeSpan.FromMinutes(5), "bench", "failover", "--runs", "1");
        string[] named = ["failover_total_ms", "detect_ms", "down_ms", "rollback_ms", "resume_ms", "rollback_store_ms", "rollback_64mib_ms"];
        foreach (var name in named)
        {
            Assert.True(rows.ContainsKey(name), $"row {name} is missing\n{output}");
            // A kill that lands before the open epoch's first write reached the secondary leaves nothing to roll back.
            Assert.True(name == "rollback_store_ms" ? rows[name] >= 0 : rows[name] > 0, $"row {name} is {rows[name]}\n{output}");
        }
        // The parts add up to the whole (each is a difference of the same timeline's instants).
        Assert.InRange(rows["detect_ms"] + rows["down_ms"] + rows["rollback_ms"] + rows["resume_ms"], rows["failover_total_ms"] - 5, rows["failover_total_ms"] + 5);
        if (!output.Contains("was not re-protected", StringComparison.Ordinal))
            Assert.True(rows.TryGetValue("reprotect_mib_s", out var rate) && rate > 0, $"re-protection happened but no reprotect_mib_s row\n{output}");
    }

    [Fact]
    public void Bench_replication_quick_writes_every_named_row()
    {
        var (rows, output) = BenchRun.Run(TimeSpan.FromMinutes(5), "bench", "replication", "--quick");
        string[] named = ["checkpoints_per_s_idle", "commit_p99_ms_idle", "commit_p99_ms_loaded", "guest_throughput_ratio",
            "write_amp_primary", "write_amp_secondary", "dataplane_mb_s", "dataplane_vs_akka_remote_ratio", "secondary_rss_mib", "cpu_ms_per_checkpoint"];
        foreach (var name in named)
            Assert.True(rows.ContainsKey(name), $"row {name} is missing");
        Assert.True(rows["checkpoints_per_s_idle"] > 0 && rows["secondary_rss_mib"] > 0 && rows["dataplane_mb_s"] > 0, output);
        string[] idleCluster = ["idle_cluster_cpu_pct", "idle_cluster_cpu_pct_arbiter", "idle_cluster_cpu_pct_primary", "idle_cluster_cpu_pct_secondary"];
        foreach (var name in idleCluster)
            Assert.True(rows.TryGetValue(name, out var pct) && pct >= 0, $"row {name} is missing or negative\n{output}");
        // The whole is the sum of its processes (each rounded to 0.1).
        Assert.InRange(rows["idle_cluster_cpu_pct"], idleCluster.Skip(1).Sum(n => rows[n]) - 0.2, idleCluster.Skip(1).Sum(n => rows[n]) + 0.2);
    }

    [Fact]
    public async Task Up_keeps_cluster_json_current_and_stops_every_process_on_SIGTERM()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-up-test-{Guid.NewGuid():N}");
        using var up = NodeProcess.Start("up", "--data-dir", dir, "--replicas", "2", "--epoch-ms", "50");
        try
        {
            var nodes = await Eventually.Get(() =>
                File.Exists(Path.Combine(dir, TopologyFile.FileName)) ? TopologyFile.Read(dir) : null,
                TimeSpan.FromSeconds(90), "cluster.json with roles");
            Assert.Equal(["arbiter", "primary", "secondary"], nodes.Select(n => n.Role).Order());
            Assert.All(nodes, n => Assert.True(IsAlive(n.Pid), $"{n.Name} (pid {n.Pid}) is not running"));
            Assert.All(nodes, n => Assert.True(n.AkkaPort > 0 && Directory.Exists(n.DataDir)));

            Signals.Send(up.Id, Signals.SigTerm);
            Assert.True(up.WaitForExit(TimeSpan.FromSeconds(60)), "up did not stop within 60 s of SIGTERM");
            Assert.Equal(0, up.ExitCode);
            Assert.All(nodes, n => Assert.False(IsAlive(n.Pid), $"{n.Name} (pid {n.Pid}) outlived up"));
        }
        finally
        {
            if (!up.HasExited)
                up.Kill(entireProcessTree: true);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(2, 3)] // 2 replicas + the arbiter
    [InlineData(3, 3)] // 3 replicas; the arbiter does not vote, or 2/2 partitions would be ties
    public async Task The_voters_for_the_split_brain_resolver_are_odd(int replicas, int voters)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-voters-test-{Guid.NewGuid():N}");
        try
        {
            await using var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, replicas,
                ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB"]));
            await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(90), CancellationToken.None);
            var members = Akka.Cluster.Cluster.Get(cluster.Observer.System).State.Members;
            Assert.Equal(replicas + 2, members.Count); // replicas, the arbiter and the observer
            Assert.Equal(voters, members.Count(m => m.HasRole(McActors.Hosting.NodeOptions.VoterRole)));
            Assert.All(members.Where(m => m.HasRole("replica")), m => Assert.True(m.HasRole(McActors.Hosting.NodeOptions.VoterRole)));
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static string NodeLogs(string dir) =>
        !Directory.Exists(dir) ? "" : string.Join("\n", Directory.EnumerateFiles(dir, "node.log", SearchOption.AllDirectories)
            .Select(f => $"--- {f}\n{string.Join("\n", File.ReadLines(f).TakeLast(40))}"));
}
