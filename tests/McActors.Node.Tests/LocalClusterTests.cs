using System.Diagnostics;
using System.Text.Json;
using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

/// <summary>Real node processes on 127.0.0.1, started through the real CLI.</summary>
[Collection(nameof(LocalClusterTests))] // one multi-process cluster at a time on a 2-core machine
public sealed class LocalClusterTests
{
    [Fact]
    public void Demo_replicates_the_guest_checkpoints_and_verifies_both_replicas()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-demo-test-{Guid.NewGuid():N}");
        var json = dir + ".json";
        try
        {
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(3),
                "demo", "--duration", "6", "--epoch-ms", "50", "--data-dir", dir, "--json", json);
            Assert.True(exit == 0, $"demo exited {exit}\n{output}\n{error}\n{NodeLogs(dir)}");
            Assert.Contains("VERIFIED", output);
            using var summary = JsonDocument.Parse(File.ReadAllText(json));
            var root = summary.RootElement;
            Assert.True(root.GetProperty("verified").GetBoolean());
            Assert.True(root.GetProperty("checkpoints_committed").GetInt64() > 20, output);
            Assert.True(root.GetProperty("last_committed_epoch").GetInt64() > 20, output);
            Assert.True(root.GetProperty("commit_p99_ms").GetDouble() > 0, output);
        }
        finally
        {
            File.Delete(json);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Bench_replication_quick_writes_every_named_row()
    {
        var (rows, output) = BenchRun.Run(TimeSpan.FromMinutes(5), "bench", "replication", "--quick");
        string[] named = ["checkpoints_per_s_idle", "commit_p99_ms_idle", "commit_p99_ms_loaded", "guest_throughput_ratio",
            "write_amp_primary", "write_amp_secondary", "dataplane_mb_s", "dataplane_vs_akka_remote_ratio", "secondary_rss_mib"];
        foreach (var name in named)
            Assert.True(rows.ContainsKey(name), $"row {name} is missing");
        Assert.True(rows["checkpoints_per_s_idle"] > 0 && rows["secondary_rss_mib"] > 0 && rows["dataplane_mb_s"] > 0, output);
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
