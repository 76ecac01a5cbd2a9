using McActors.Hosting;
using McActors.Node.Hosting;
using McActors.Protocol;

namespace McActors.Node.LocalCluster;

/// <summary>
/// What a local cluster is made of; with <see cref="Nbd"/>, every replica serves the volume over NBD (on a free port) while primary;
/// with <see cref="Netns"/>, every node runs in a network namespace of its own (<see cref="NetworkNamespaces"/>; root only), so that partitions can be real.
/// </summary>
public sealed record LocalClusterOptions(string DataDirectory, int Replicas, IReadOnlyList<string> Overrides, bool Nbd = false, bool Netns = false);

/// <summary>
/// A cluster of OS processes on 127.0.0.1 (or each in its own network namespace, at its own
/// address), one per node: an arbiter and N replicas, all sharing DATA/coordinator.db as the
/// coordinator's journal. Keeps DATA/cluster.json current and stops every process it started
/// (and tears its namespaces down).
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);
    private readonly List<LocalNodeProcess> _nodes = [];
    private readonly LocalClusterOptions _options;
    private IReadOnlyList<TopologyNode> _written = [];

    private LocalCluster(LocalClusterOptions options) => _options = options;

    public IReadOnlyList<LocalNodeProcess> Nodes => _nodes;
    public ClusterObserver Observer { get; private set; } = null!;
    public string DataDirectory => _options.DataDirectory;

    /// <summary>The nodes' private network when they run in namespaces, else null.</summary>
    public NetworkNamespaces? Network { get; private set; }

    public static LocalCluster Start(LocalClusterOptions options)
    {
        if (options.Replicas < 1)
            throw new ArgumentException($"--replicas {options.Replicas}: at least one replica is needed");
        Directory.CreateDirectory(options.DataDirectory);
        var count = options.Replicas + 1;
        var ports = FreePorts.Take(3 * count);
        var names = Enumerable.Range(0, count).Select(i => i == 0 ? "arbiter" : $"replica-{i}").ToList();
        var network = options.Netns ? NetworkNamespaces.Create(names) : null;
        string HostOf(int i) => network?.AddressOf(names[i]) ?? "127.0.0.1";
        var seeds = Enumerable.Range(0, count).Select(i => $"{HostOf(i)}:{ports[i]}").ToList();
        var journal = Path.Combine(options.DataDirectory, "coordinator.db");
        // The coordinator assigns roles once this many replicas registered. Every node is a seed, so the
        // first one (the arbiter) forms the cluster only after seed-node-timeout without an answer
        // from another: 5 s by default, for networks; 1 s on loopback. The caller's --set still wins.
        options = options with
        {
            Overrides = [$"mcactors.cluster.replicas = {options.Replicas}", "akka.cluster.seed-node-timeout = 1s", .. options.Overrides],
        };
        var cluster = new LocalCluster(options) { Network = network };
        try
        {
            for (var i = 0; i < count; i++)
            {
                // The arbiter comes first: it is the first seed and forms the cluster.
                var (kind, name) = (i == 0 ? NodeKind.Arbiter : NodeKind.Replica, names[i]);
                // The arbiter votes only beside an even number of replicas: the voters stay odd, so
                // no partition or double failure is a tie for the Split Brain Resolver.
                var node = new NodeOptions(kind, name, HostOf(i), ports[i], seeds,
                    Path.Combine(options.DataDirectory, name), journal, ports[count + i], options.Overrides,
                    options.Nbd && kind == NodeKind.Replica ? $"{HostOf(i)}:{ports[2 * count + i]}" : null,
                    Votes: kind == NodeKind.Replica || options.Replicas % 2 == 0);
                cluster._nodes.Add(LocalNodeProcess.Start(node, network));
            }
            cluster.Observer = ClusterObserver.Join(seeds, options.DataDirectory, options.Overrides, network?.HostAddress ?? "127.0.0.1");
        }
        catch
        {
            cluster._nodes.ForEach(n => n.Dispose());
            network?.Dispose();
            throw;
        }
        return cluster;
    }

    /// <summary>Polls the coordinator until every replica has a role; throws naming the logs to read if not in time.</summary>
    public async Task<CoordinatorStatus> WaitForRolesAsync(TimeSpan timeout, CancellationToken cancel)
    {
        var deadline = DateTime.UtcNow + timeout;
        string last = "no answer from the coordinator";
        while (DateTime.UtcNow < deadline)
        {
            cancel.ThrowIfCancellationRequested();
            if (_nodes.FirstOrDefault(n => n.HasExited) is { } dead)
                throw new InvalidOperationException($"node {dead.Options.Name} exited during start-up; see {dead.LogPath}");
            try
            {
                var status = await Observer.StatusAsync(TimeSpan.FromSeconds(2));
                if (status.Primary is not null && status.Secondaries.Count == _options.Replicas - 1)
                    return status;
                last = $"generation {status.Generation}, primary {status.Primary ?? "none"}, {status.Secondaries.Count} secondaries";
            }
            catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
            {
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250), cancel);
        }
        throw new TimeoutException($"replicas got no roles within {timeout.TotalSeconds:0} s ({last}); see the node.log files under {DataDirectory}");
    }

    /// <summary>Rewrites DATA/cluster.json if anything in it changed (roles from the coordinator's status).</summary>
    public void UpdateTopology(CoordinatorStatus? status)
    {
        var nodes = _nodes.Select(n => new TopologyNode(n.Options.Name, n.Pid, RoleOf(n, status), n.Options.Port, n.Options.DataDirectory, n.Options.Nbd)).ToList();
        if (nodes.SequenceEqual(_written))
            return;
        TopologyFile.Write(DataDirectory, nodes);
        _written = nodes;
    }

    public LocalNodeProcess Node(string name) =>
        _nodes.FirstOrDefault(n => n.Options.Name == name) ?? throw new ArgumentException($"no node named {name}");

    /// <summary>SIGKILLs the node (a crash); returns the UTC instant of the signal.</summary>
    public DateTime Kill(string name) => Node(name).Kill();

    /// <summary>
    /// Starts the node again with the same name, data directory and ports (after it died or was
    /// killed: a process still running is killed first), logging on into the same node.log.
    /// </summary>
    public async Task<LocalNodeProcess> RestartAsync(string name)
    {
        var old = Node(name);
        old.Kill();
        await old.WaitForExitAsync(StopGrace);
        old.Dispose();
        var fresh = LocalNodeProcess.Start(old.Options, Network);
        _nodes[_nodes.IndexOf(old)] = fresh;
        return fresh;
    }

    /// <summary>
    /// Ends every node at once with SIGKILL, and the observer without a leave: fast, for when what
    /// matters is already on disk (a committed checkpoint) and the files are what is checked next.
    /// </summary>
    public async Task CrashAllAsync()
    {
        foreach (var node in _nodes)
            node.Kill();
        await Task.WhenAll([.. _nodes.Select(n => n.WaitForExitAsync(StopGrace)), Observer?.AbandonAsync() ?? Task.CompletedTask]);
    }

    /// <summary>The observer leaves, then replicas and the arbiter get SIGTERM (SIGKILL after a grace period).</summary>
    public async ValueTask DisposeAsync()
    {
        // A leave needs the network: whatever a fault left cut is healed first.
        Network?.HealAll();
        if (Observer is not null)
        {
            try
            {
                await Observer.DisposeAsync();
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
            }
        }
        await Task.WhenAll(_nodes.Skip(1).Select(n => n.StopAsync(StopGrace)));
        if (_nodes.Count > 0)
            await _nodes[0].StopAsync(StopGrace);
        _nodes.ForEach(n => n.Dispose());
        // After the processes: a namespace deleted under a running node would leave it cut from everything.
        Network?.Dispose();
    }

    private static string RoleOf(LocalNodeProcess node, CoordinatorStatus? status) =>
        node.Options.Kind == NodeKind.Arbiter ? "arbiter"
        : status?.Primary == node.Options.Name ? "primary"
        : "secondary";
}
