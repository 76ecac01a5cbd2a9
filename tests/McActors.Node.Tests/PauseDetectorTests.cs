using McActors.Hosting;
using McActors.Node.Hosting;
using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

/// <summary>
/// A node process paused (SIGSTOP) for longer than the cluster needs to down it must leave when it
/// wakes (exit code 3) instead of acting on its stale view; the cluster carries on without it.
/// </summary>
[Collection(nameof(LocalClusterTests))]
public sealed class PauseDetectorTests
{
    [Fact]
    public async Task A_node_paused_past_the_limit_downs_itself_and_exits_3_when_it_wakes()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-pause-test-{Guid.NewGuid():N}");
        try
        {
            await using var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, 2,
                ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB", "mcactors.node.pause-limit = 3s"]));
            var status = await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(90), CancellationToken.None);
            var secondary = cluster.Node(status.Secondaries[0]);

            var pausedAt = secondary.Pause();
            // The others detect and down it (it drops out of the replica set) ...
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while ((await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5))).Secondaries.Count > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, "the paused secondary was never dropped from the replica set");
                await Task.Delay(TimeSpan.FromMilliseconds(200));
            }
            // ... and the pause (the fault itself) lasts past the node's 3 s limit.
            var remaining = pausedAt + TimeSpan.FromSeconds(5) - DateTime.UtcNow;
            if (remaining > TimeSpan.Zero)
                await Task.Delay(remaining);
            secondary.Resume();

            Assert.True(await secondary.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"the woken node still runs; see {secondary.LogPath}");
            Assert.Equal(NodeHost.ExitDowned, secondary.ExitCode);
            Assert.Contains("this process was paused for", await File.ReadAllTextAsync(secondary.LogPath));
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }
}
