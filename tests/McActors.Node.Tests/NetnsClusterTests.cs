using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

/// <summary>A local cluster whose nodes each run in their own network namespace (root, as in CI), partitioned by iptables.</summary>
[Collection(nameof(LocalClusterTests))] // one multi-process cluster at a time on a 2-core machine
public sealed class NetnsClusterTests
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task A_primary_cut_from_the_network_but_not_from_its_clients_is_failed_over_and_exits_downed_once_the_cut_heals()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-netns-test-{Guid.NewGuid():N}");
        string? tag = null;
        var passed = false;
        try
        {
            await using (var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, 2,
                ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 16MiB"], Nbd: true, Netns: true)))
            {
                var net = cluster.Network!;
                tag = net.Tag;
                var start = await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(90), CancellationToken.None);
                var primary = cluster.Node(start.Primary!);
                // Every node is at its namespace's address, not on loopback.
                Assert.All(cluster.Nodes, n => Assert.Equal(net.AddressOf(n.Options.Name), n.Options.Host));
                Assert.Equal(net.HostAddress, Akka.Cluster.Cluster.Get(cluster.Observer.System).SelfAddress.Host);
                var committed = await UntilAsync(async () => await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5)) is { LastCommitted: > 5 } s ? s : null,
                    TimeSpan.FromSeconds(60), "checkpoints committing before the cut");

                // Cut from the cluster and the observer; its NBD port stays open to the host, as for a client.
                var nbdPort = int.Parse(primary.Options.Nbd!.Split(':')[1]);
                net.Isolate(primary.Options.Name, hostPorts: [nbdPort]);
                Assert.True(await net.ReachesAsync(null, primary.Options.Host, nbdPort, TimeSpan.FromSeconds(3)), "the host lost the cut primary's NBD port");
                Assert.False(await net.ReachesAsync(null, primary.Options.Host, primary.Options.Port, TimeSpan.FromSeconds(3)), "the host still reaches the cut primary's cluster port");
                var after = await UntilAsync(async () =>
                {
                    var s = await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5));
                    return s.Generation > start.Generation && s.Primary is not null && s.Primary != primary.Options.Name ? s : null;
                }, TimeSpan.FromSeconds(60), $"a failover away from {primary.Options.Name}, cut from the network");
                Assert.True(after.LastFailover!.TargetCheckpoint >= committed.LastCommitted,
                    $"the failover went back to {after.LastFailover.TargetCheckpoint}, below {committed.LastCommitted} committed before the cut");

                net.HealAll();
                Assert.True(await primary.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"{primary.Options.Name} still runs a minute after the cut healed; see {primary.LogPath}");
                Assert.Equal(3, primary.ExitCode);
            }
            Assert.Empty(NetworkNamespaces.Leftovers(tag));
            passed = true;
        }
        finally
        {
            // A failed run's node logs stay for reading.
            if (passed && Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<T> UntilAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what) where T : class
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (await probe() is { } value)
                    return value;
            }
            catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
            {
                last = e; // the coordinator moving or being recovered
            }
            await Task.Delay(Poll);
        }
        throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds:0} s{(last is null ? "" : $" (last: {last.Message})")}");
    }
}
