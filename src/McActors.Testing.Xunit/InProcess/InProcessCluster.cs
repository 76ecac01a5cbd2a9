using Akka.Actor;
using Akka.Cluster;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Guests;
using McActors.Hosting;
using McActors.Protocol;
using McActors.Replication;
using Xunit;
using Xunit.Abstractions;

namespace McActors.Testing.Xunit.InProcess;

/// <summary>
/// Cluster nodes in one process, for your own tests: the TestKit's system is the arbiter (or an
/// observer), replica systems join it, with the real coordinator singleton on a shared SQLite
/// journal, real replica actors, data plane and stores under <see cref="Root"/>. Derive your test
/// class as <c>class MyTests : InProcessCluster&lt;MyTests&gt;</c>: each class gets its own ports
/// and directory (statics of the closed generic type). Replicas run the guest you give
/// <see cref="StartReplica"/> (the synthetic one by default).
/// </summary>
public abstract class InProcessCluster<TSelf> : Akka.TestKit.Xunit2.TestKit
{
    protected static readonly string Root = Path.Combine(Path.GetTempPath(), $"mcactors-inproc-{Guid.NewGuid():N}");
    private static readonly int[] Ports = FreePorts.Take(8);
    private static readonly string[] Seeds = [$"127.0.0.1:{Ports[0]}"];

    /// <summary>
    /// What every node of these tests runs with: short epochs and a small volume keep tests quick.
    /// The failure detector tolerates 10 s of silence instead of hocon/cluster.conf's 600 ms: these
    /// nodes share one process and its thread pool, and a loaded machine stalls all of them at once
    /// (heartbeat gaps of 1.5 s at load 5 and up to 5 s at load 60 measured on a 2-core box). With
    /// 600 ms the Split Brain Resolver then downs healthy nodes (the arbiter with the coordinator and
    /// the test's proxy, or a replica before it registered; both sides of a split, even), and no
    /// supervisor restarts them as one would real nodes, so the test waits for a cluster that never
    /// forms. A crash is detected about 10 s later for it; the prepare timeout must stay above
    /// detection plus downing (see reference.conf), so it is raised to 20 s.
    /// </summary>
    protected static readonly string[] TestOverrides =
    [
        "mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB", "akka.loglevel = INFO",
        "akka.cluster.failure-detector.acceptable-heartbeat-pause = 10s", "mcactors.checkpoint.prepare-timeout = 20s",
    ];

    /// <summary>
    /// Config that makes <see cref="ActorSystem.Terminate"/> a crash: no coordinated shutdown, so no
    /// graceful leave or singleton hand-over; the others must detect the node and down it.
    /// </summary>
    protected const string Crashable = """
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        akka.cluster.run-coordinated-shutdown-when-down = off
        """;

    protected InProcessCluster(ITestOutputHelper output, NodeKind self = NodeKind.Arbiter)
        : base(NodeConfig.Build(Options(self, "arbiter", 0)), NodeOptions.SystemName, output)
    {
    }

    private static NodeOptions Options(NodeKind kind, string name, int index) =>
        new(kind, name, "127.0.0.1", Ports[index], Seeds, Path.Combine(Root, name), Path.Combine(Root, "coordinator.db"),
            index == 0 ? 0 : Ports[4 + index], TestOverrides);

    /// <summary>Starts replica nodes 1..<paramref name="count"/> joined to the TestKit's system.</summary>
    protected static List<ActorSystem> StartReplicas(McActorsSettings settings, int count, string extraConfig = "",
        Func<GuestContext, Props>? guest = null, Action<ActorSystem>? onStart = null) =>
        [.. Enumerable.Range(1, count).Select(index => StartReplica(settings, index, extraConfig, guest, onStart))];

    /// <summary>
    /// Starts replica node <paramref name="index"/> (1–3, "replica-N", its data in <c>Root/replica-N</c>):
    /// the coordinator singleton's proxy and the replica actor running <paramref name="guest"/> when
    /// primary; <paramref name="onStart"/> runs first (start your node's own actors there).
    /// </summary>
    protected static ActorSystem StartReplica(McActorsSettings settings, int index, string extraConfig = "",
        Func<GuestContext, Props>? guest = null, Action<ActorSystem>? onStart = null)
    {
        var name = ReplicaName(index);
        var options = Options(NodeKind.Replica, name, index);
        var config = Akka.Configuration.ConfigurationFactory.ParseString(extraConfig).WithFallback(NodeConfig.Build(options));
        var system = ActorSystem.Create(NodeOptions.SystemName, config);
        onStart?.Invoke(system);
        var proxy = CoordinatorSingleton.Start(system, settings);
        system.ActorOf(ReplicaActor.Props(new ReplicaSettings(name, options.DataDirectory, "127.0.0.1", options.DataPort, settings, guest), proxy), "replica");
        return system;
    }

    /// <summary>The coordinator singleton on this node, this node forming the cluster, then <paramref name="count"/> replica nodes.</summary>
    protected IActorRef StartCluster(McActorsSettings settings, List<ActorSystem> replicas, int count, string extraConfig = "",
        Func<GuestContext, Props>? guest = null, Action<ActorSystem>? onStart = null)
    {
        var coordinator = CoordinatorSingleton.Start(Sys, settings);
        Cluster.Get(Sys).Join(Cluster.Get(Sys).SelfAddress);
        replicas.AddRange(StartReplicas(settings, count, extraConfig, guest, onStart));
        return coordinator;
    }

    protected static string ReplicaName(int index) => $"replica-{index}";

    /// <summary>The replica number in a node name ("replica-2" → 2), as <see cref="StartReplica"/> numbers them.</summary>
    protected static int IndexOf(string replica) => int.Parse(replica["replica-".Length..]);

    /// <summary>Stops a replica node's system (a crash with <see cref="Crashable"/>) and forgets it.</summary>
    protected static async Task Stop(List<ActorSystem> replicas, ActorSystem node)
    {
        await node.Terminate().WaitAsync(TimeSpan.FromSeconds(30));
        replicas.Remove(node);
    }

    /// <summary>The running node of replica <paramref name="replica"/>.</summary>
    protected static ActorSystem NodeOf(List<ActorSystem> replicas, string replica) =>
        replicas.Single(s => Cluster.Get(s).SelfAddress.Port == Ports[IndexOf(replica)]);

    protected static async Task TerminateAll(IEnumerable<ActorSystem> systems)
    {
        foreach (var system in systems)
            await system.Terminate().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Polls the coordinator's status until <paramref name="condition"/> holds; fails after <paramref name="timeout"/> saying <paramref name="what"/>.</summary>
    protected async Task<CoordinatorStatus> AwaitStatus(IActorRef coordinator, Func<CoordinatorStatus, bool> condition, string what, TimeSpan timeout)
    {
        CoordinatorStatus status = null!;
        await AwaitAssertAsync(async () =>
        {
            status = await coordinator.Ask<CoordinatorStatus>(GetCoordinatorStatus.Instance, TimeSpan.FromSeconds(2));
            Assert.True(condition(status), $"{what}: generation {status.Generation}, primary {status.Primary}, last committed {status.LastCommitted}");
        }, timeout, TimeSpan.FromMilliseconds(200));
        return status;
    }

    protected override void AfterAll()
    {
        base.AfterAll();
        if (Directory.Exists(Root))
            Directory.Delete(Root, recursive: true);
    }
}
