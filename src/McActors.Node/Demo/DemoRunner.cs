using System.Diagnostics;
using System.Text.Json;
using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Demo;

public sealed record DemoOptions(string DataDirectory, TimeSpan Duration, IReadOnlyList<string> Overrides, string? JsonPath);

/// <summary>
/// The main job: a local cluster (primary, secondary, arbiter as three processes) runs the
/// synthetic guest, with live progress; then the guest stops at a last committed checkpoint and
/// both replicas are verified against it. Exit 0 only if they agree.
/// </summary>
public static class DemoRunner
{
    public static async Task<int> RunAsync(DemoOptions options, TextWriter output, CancellationToken cancel)
    {
        await output.WriteLineAsync($"McActors demo: 2 replicas + 1 arbiter on 127.0.0.1, data in {options.DataDirectory}");
        var clock = Stopwatch.StartNew();
        DemoVerdict verdict;
        CoordinatorStatus last;
        long stoppedAt;
        string primary, secondary;
        await using (var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(options.DataDirectory, 2, options.Overrides)))
        {
            last = await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(60), cancel);
            cluster.UpdateTopology(last);
            primary = last.Primary!;
            secondary = last.Secondaries[0];
            await output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,5:0.0}s] roles: primary {primary}, secondary {secondary} (generation {last.Generation}); guest running");

            var run = Stopwatch.StartNew();
            var previous = (Time: run.Elapsed, last.CheckpointsCommitted);
            while (run.Elapsed < options.Duration)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancel);
                try
                {
                    last = await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(2));
                }
                catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
                {
                    await output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,5:0.0}s] coordinator did not answer in 2 s");
                    continue;
                }
                var rate = (last.CheckpointsCommitted - previous.CheckpointsCommitted) / (run.Elapsed - previous.Time).TotalSeconds;
                previous = (run.Elapsed, last.CheckpointsCommitted);
                await output.WriteLineAsync(
                    $"[{clock.Elapsed.TotalSeconds,5:0.0}s] epoch {last.LastCommitted,5}  {rate,6:0.0} ckpt/s  " +
                    $"commit p50 {last.CommitP50Ms,5:0.0} ms p99 {last.CommitP99Ms,5:0.0} ms  " +
                    $"{last.BytesCommitted / 1e6,8:0.0} MB replicated  in flight {last.InFlight}{(last.Degraded ? "  DEGRADED" : "")}");
            }

            await output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,5:0.0}s] stopping the guest at a last checkpoint");
            var stopped = await cluster.Observer.StopGuestAsync(TimeSpan.FromSeconds(30));
            stoppedAt = stopped.Epoch;
            last = await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5));
            await output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,5:0.0}s] guest stopped; checkpoint {stoppedAt} committed; stopping the nodes");
        }

        verdict = DemoVerifier.Verify(Path.Combine(options.DataDirectory, primary), Path.Combine(options.DataDirectory, secondary), stoppedAt);
        await output.WriteLineAsync($"[{clock.Elapsed.TotalSeconds,5:0.0}s] {(verdict.Verified ? "VERIFIED" : "NOT VERIFIED")}: {verdict.Detail}");
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
            };
            await File.WriteAllBytesAsync(options.JsonPath, JsonSerializer.SerializeToUtf8Bytes(summary, new JsonSerializerOptions { WriteIndented = true }), CancellationToken.None);
        }
        return verdict.Verified ? 0 : 1;
    }
}
