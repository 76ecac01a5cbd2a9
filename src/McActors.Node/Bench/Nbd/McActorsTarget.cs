using McActors.Node.LocalCluster;
using McActors.Protocol;

namespace McActors.Node.Bench.Nbd;

/// <summary>
/// McActors: a local cluster (arbiter, primary, one secondary) serving the volume over NBD from the
/// primary. A FLUSH is answered once its checkpoint committed on the secondary.
/// </summary>
public sealed class McActorsTarget : INbdBenchTarget
{
    private static readonly TimeSpan RolesTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly LocalCluster.LocalCluster _cluster;
    private readonly CoordinatorStatus _start;
    private readonly string _nbd;

    private McActorsTarget(LocalCluster.LocalCluster cluster, CoordinatorStatus start, string nbd, long sizeBytes)
    {
        _cluster = cluster;
        _start = start;
        _nbd = nbd;
        SizeBytes = sizeBytes;
    }

    public string Name => "mcactors";
    public string Description => $"McActors: primary {_start.Primary} + secondary {string.Join(", ", _start.Secondaries)}, " +
        $"epochs every {_cluster.Observer.System.Settings.Config.GetTimeSpan("mcactors.checkpoint.epoch-interval").TotalMilliseconds:0} ms";
    public string Uri => $"nbd://{_nbd}";

    /// <summary>The replicated volume's size (<c>mcactors.volume.size</c>); the other targets get the same.</summary>
    public long SizeBytes { get; }

    public static async Task<McActorsTarget> StartAsync(string directory, IReadOnlyList<string> overrides, CancellationToken cancel)
    {
        var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(directory, Replicas: 2, overrides, Nbd: true));
        try
        {
            var status = await cluster.WaitForRolesAsync(RolesTimeout, cancel);
            var nbd = cluster.Node(status.Primary!).Options.Nbd
                ?? throw new BenchFailedException($"the primary {status.Primary} serves no NBD export");
            var size = cluster.Observer.System.Settings.Config.GetByteSize("mcactors.volume.size")
                ?? throw new BenchFailedException("mcactors.volume.size is not set");
            var target = new McActorsTarget(cluster, status, nbd, size);
            await NbdReady.WaitAsync(target.Uri, StartTimeout,
                () => cluster.Nodes.FirstOrDefault(n => n.HasExited) is { } dead ? $"node {dead.Options.Name} exited; see {dead.LogPath}" : null, cancel);
            return target;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a window of the coordinator's commit latencies (read it when the fio run ends).</summary>
    public CommitLatencyProbe StartCommitLatency() => CommitLatencyProbe.Start(_cluster.Observer, _cluster.DataDirectory);

    /// <summary>
    /// Throws unless the secondary is still in the replica set of the same generation: numbers
    /// measured after it was dropped (or after a failover) would not be those of replication.
    /// </summary>
    public async Task VerifyStillReplicatedAsync()
    {
        var now = await _cluster.Observer.StatusAsync(TimeSpan.FromSeconds(5));
        if (now.Generation != _start.Generation || now.Primary != _start.Primary || !_start.Secondaries.All(now.Secondaries.Contains))
            throw new BenchFailedException($"the replica set changed during the run (generation {_start.Generation} → {now.Generation}, " +
                $"primary {_start.Primary} → {now.Primary}, secondaries {string.Join(",", _start.Secondaries)} → {string.Join(",", now.Secondaries)}); " +
                $"see the node.log files under {_cluster.DataDirectory}");
    }

    public ValueTask DisposeAsync() => _cluster.DisposeAsync();
}
