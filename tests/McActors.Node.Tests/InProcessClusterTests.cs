using Akka.Actor;
using Akka.Cluster;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Node.Demo;
using McActors.Hosting;
using McActors.Node.Hosting;
using McActors.Node.LocalCluster;
using McActors.Protocol;
using McActors.Replication;
using Xunit.Abstractions;

namespace McActors.Node.Tests;

/// <summary>
/// Cluster nodes in one process (the TestKit's system is the arbiter, replica systems beside it),
/// the real coordinator singleton on a shared SQLite journal, real replica actors and data plane.
/// Each test class gets its own ports and directory (statics of the closed generic type).
/// </summary>
public abstract class InProcessCluster<TSelf> : Akka.TestKit.Xunit2.TestKit
{
    protected static readonly string Root = Path.Combine(Path.GetTempPath(), $"mcactors-inproc-{Guid.NewGuid():N}");
    private static readonly int[] Ports = FreePorts.Take(8);
    private static readonly string[] Seeds = [$"127.0.0.1:{Ports[0]}"];

    protected InProcessCluster(ITestOutputHelper output, NodeKind self = NodeKind.Arbiter)
        : base(NodeConfig.Build(Options(self, "arbiter", 0)), NodeOptions.SystemName, output)
    {
    }

    private static NodeOptions Options(NodeKind kind, string name, int index) =>
        new(kind, name, "127.0.0.1", Ports[index], Seeds, Path.Combine(Root, name), Path.Combine(Root, "coordinator.db"),
            index == 0 ? 0 : Ports[4 + index], ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB", "akka.loglevel = INFO"]);

    /// <summary>
    /// Config that makes <see cref="ActorSystem.Terminate"/> a crash: no coordinated shutdown, so no
    /// graceful leave or singleton hand-over; the others must detect the node and down it.
    /// </summary>
    protected const string Crashable = """
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        akka.cluster.run-coordinated-shutdown-when-down = off
        """;

    /// <summary>Starts replica nodes joined to the TestKit's (arbiter) system, each with its replica actor.</summary>
    protected static List<ActorSystem> StartReplicas(McActorsSettings settings, int count, string extraConfig = "") =>
        [.. Enumerable.Range(1, count).Select(index => StartReplica(settings, index, extraConfig))];

    protected static ActorSystem StartReplica(McActorsSettings settings, int index, string extraConfig = "")
    {
        var name = $"replica-{index}";
        var options = Options(NodeKind.Replica, name, index);
        var config = Akka.Configuration.ConfigurationFactory.ParseString(extraConfig).WithFallback(NodeConfig.Build(options));
        var system = ActorSystem.Create(NodeOptions.SystemName, config);
        var proxy = CoordinatorSingleton.Start(system, settings);
        system.ActorOf(ReplicaActor.Props(new ReplicaSettings(name, options.DataDirectory, "127.0.0.1", options.DataPort, settings), proxy), "replica");
        return system;
    }

    /// <summary>
    /// Stops the guest at a last committed checkpoint, shuts the running replica nodes down, and
    /// checks that both replicas hold that checkpoint: the same guest state, the image it describes.
    /// </summary>
    protected async Task<GuestStopped> StopAndVerify(IActorRef coordinator, IEnumerable<ActorSystem> running, string primary, string secondary)
    {
        var stopped = await coordinator.Ask<GuestStopped>(StopGuest.Instance, TimeSpan.FromSeconds(30));
        // The primary's node leaves last. Leaving first, it could take the coordinator singleton with
        // it to a secondary's node, whose recovered coordinator fails over to (and promotes) that
        // secondary while it is being verified.
        var nodes = running.ToList();
        var primaryNode = NodeOf(nodes, primary);
        foreach (var system in nodes.Where(s => s != primaryNode).Append(primaryNode))
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance).WaitAsync(TimeSpan.FromSeconds(30));
        var verdict = DemoVerifier.Verify(Path.Combine(Root, primary), Path.Combine(Root, secondary), stopped.Epoch);
        Assert.True(verdict.Verified, verdict.Detail);
        return stopped;
    }

    /// <summary>The coordinator singleton on this node, this node forming the cluster, then <paramref name="count"/> replica nodes.</summary>
    protected IActorRef StartCluster(McActorsSettings settings, List<ActorSystem> replicas, int count, string extraConfig = "")
    {
        var coordinator = CoordinatorSingleton.Start(Sys, settings);
        Cluster.Get(Sys).Join(Cluster.Get(Sys).SelfAddress);
        replicas.AddRange(StartReplicas(settings, count, extraConfig));
        return coordinator;
    }

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

/// <summary>A primary and a secondary commit checkpoints, the guest stops at a last one, and both replicas verify.</summary>
[Collection(nameof(LocalClusterTests))]
public sealed class InProcessClusterTests(ITestOutputHelper output) : InProcessCluster<InProcessClusterTests>(output)
{
    [Fact]
    public async Task A_primary_and_a_secondary_commit_checkpoints_and_hold_the_same_checkpoint_after_a_guest_stop()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config);
            var coordinator = StartCluster(settings, replicas, 2);

            CoordinatorStatus status = null!;
            await AwaitAssertAsync(async () =>
            {
                status = await coordinator.Ask<CoordinatorStatus>(GetCoordinatorStatus.Instance, TimeSpan.FromSeconds(2));
                Assert.True(status.LastCommitted >= 10, $"last committed {status.LastCommitted}");
            }, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500));
            Assert.NotNull(status.Primary);
            Assert.Single(status.Secondaries);
            Assert.False(status.Degraded);
            Assert.True(status.BytesCommitted > 0);

            var stopped = await StopAndVerify(coordinator, replicas, status.Primary!, status.Secondaries[0]);
            Assert.True(stopped.Epoch > status.LastCommitted);
        }
        finally
        {
            await TerminateAll(replicas);
        }
    }
}

/// <summary>The primary's node goes: a secondary takes over at the last committed checkpoint and the guest goes on.</summary>
[Collection(nameof(LocalClusterTests))]
public sealed class InProcessFailoverTests(ITestOutputHelper output) : InProcessCluster<InProcessFailoverTests>(output)
{
    [Fact]
    public async Task When_the_primary_node_goes_the_secondary_that_prepared_most_takes_over_and_the_guest_goes_on_consistently()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config) with { Replicas = 3 };
            var coordinator = StartCluster(settings, replicas, 3);

            var before = await AwaitStatus(coordinator, s => s.LastCommitted >= 10, "checkpoints before the failover", TimeSpan.FromSeconds(60));
            Assert.Equal(2, before.Secondaries.Count);
            var old = before.Primary!;
            // The primary's node goes away (its system stops); DeathWatch tells the coordinator.
            await Stop(replicas, NodeOf(replicas, old));

            var after = await AwaitStatus(coordinator, s => s.Generation == 2 && s.LastFailover?.ResumedAt is not null && s.LastCommitted >= before.LastCommitted + 10,
                "checkpoints after the failover", TimeSpan.FromSeconds(60));
            Assert.NotEqual(old, after.Primary);
            Assert.Single(after.Secondaries);
            var failover = after.LastFailover!;
            Assert.Equal((old, after.Primary), (failover.FromPrimary, failover.ToPrimary));
            // Nothing committed is lost: the target is at least the last commit seen before the loss.
            Assert.True(failover.TargetCheckpoint >= before.LastCommitted, $"target {failover.TargetCheckpoint} < {before.LastCommitted}");
            Assert.NotNull(failover.RolledBackAt);

            // The new primary's image is its guest's state, and the remaining secondary holds the same checkpoint.
            var stopped = await StopAndVerify(coordinator, replicas, after.Primary!, after.Secondaries[0]);
            Assert.Equal(2, stopped.Generation);
        }
        finally
        {
            await TerminateAll(replicas);
        }
    }
}

/// <summary>
/// The node that hosts both the coordinator singleton and the primary crashes: the singleton moves
/// to the next oldest node, recovers from the shared SQLite journal, sees the primary's node gone
/// and fails over.
/// </summary>
[Collection(nameof(LocalClusterTests))]
public sealed class InProcessCoordinatorMoveTests(ITestOutputHelper output)
    : InProcessCluster<InProcessCoordinatorMoveTests>(output, NodeKind.Observer) // a vote, but no home for the singleton
{
    [Fact]
    public async Task A_crash_of_the_node_with_coordinator_and_primary_moves_the_coordinator_which_fails_over_from_its_journal()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config) with { Replicas = 3 };
            // This node only asks (a proxy): the singleton lives on the oldest replica node, replica-1.
            var coordinator = CoordinatorSingleton.StartProxy(Sys);
            Cluster.Get(Sys).Join(Cluster.Get(Sys).SelfAddress);
            // One at a time, so that replica-1 is the oldest: it hosts the singleton and (oldest first) is the primary.
            for (var i = 1; i <= 3; i++)
            {
                replicas.Add(StartReplica(settings, i, Crashable));
                await AwaitAssertAsync(() => Assert.Equal(i + 1, Cluster.Get(Sys).State.Members.Count(m => m.Status == MemberStatus.Up)),
                    TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));
            }

            var before = await AwaitStatus(coordinator, s => s.LastCommitted >= 10, "checkpoints before the crash", TimeSpan.FromSeconds(60));
            Assert.Equal("replica-1", before.Primary); // the oldest replica is primary, and hosts the singleton
            await replicas[0].Terminate().WaitAsync(TimeSpan.FromSeconds(30));
            // Unlike a real crash, an in-process one does not end the dead node's SQLite handles: a
            // journal write it had under way could hold the shared file's lock until its connection
            // is finalized. Release them, as the OS does for a killed process.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();

            var after = await AwaitStatus(coordinator, s => s.Generation == 2 && s.Primary != "replica-1" && s.LastCommitted >= before.LastCommitted + 10,
                "checkpoints after the move and failover", TimeSpan.FromSeconds(60));
            Assert.Single(after.Secondaries);
            Assert.Equal(1, after.Failovers);
            await StopAndVerify(coordinator, replicas.Skip(1), after.Primary!, after.Secondaries[0]);
        }
        finally
        {
            await TerminateAll(replicas);
        }
    }
}

/// <summary>
/// Re-protection: after a failover the new primary runs alone; the old primary's node comes back
/// with its old image, is resynced (only what differs is copied) while the guest runs, joins the
/// replica set, and ends byte-identical to the new primary.
/// </summary>
[Collection(nameof(LocalClusterTests))]
public sealed class InProcessReprotectTests(ITestOutputHelper output) : InProcessCluster<InProcessReprotectTests>(output)
{
    [Fact]
    public async Task A_crashed_primary_that_comes_back_is_resynced_and_protects_the_volume_again()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config);
            var coordinator = StartCluster(settings, replicas, 2, Crashable);

            var before = await AwaitStatus(coordinator, s => s.LastCommitted >= 10, "checkpoints before the crash", TimeSpan.FromSeconds(60));
            var old = before.Primary!;
            await Stop(replicas, NodeOf(replicas, old));
            var alone = await AwaitStatus(coordinator, s => s.Generation == 2 && s.LastFailover?.ResumedAt is not null, "failover", TimeSpan.FromSeconds(60));
            Assert.True(alone.Degraded);

            // The old primary's node restarts with its data directory: it joins and is resynced.
            replicas.Add(StartReplica(settings, IndexOf(old), Crashable));
            var synced = await AwaitStatus(coordinator, s => s.Secondaries.Contains(old) && s.LastCommitted > alone.LastCommitted + 5,
                "re-protection", TimeSpan.FromSeconds(90));
            Assert.False(synced.Degraded);
            Assert.Empty(synced.Resyncing);

            await StopAndVerify(coordinator, replicas, synced.Primary!, old);
        }
        finally
        {
            await TerminateAll(replicas);
        }
    }
}

/// <summary>A joiner that crashes in the middle of its copy cannot vouch for its image, and is resynced when it returns.</summary>
[Collection(nameof(LocalClusterTests))]
public sealed class InProcessResyncCrashTests(ITestOutputHelper output) : InProcessCluster<InProcessResyncCrashTests>(output)
{
    [Fact]
    public async Task A_joiner_that_crashes_mid_copy_refuses_to_vouch_and_is_resynced_when_it_returns()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config);
            var coordinator = StartCluster(settings, replicas, 2, Crashable);
            var before = await AwaitStatus(coordinator, s => s.LastCommitted >= 10 && s.Secondaries.Count == 1, "checkpoints", TimeSpan.FromSeconds(60));

            // The secondary crashes and comes back with an empty disk on a slow store: the copy takes seconds.
            var joiner = before.Secondaries[0];
            var index = IndexOf(joiner);
            await Stop(replicas, NodeOf(replicas, joiner));
            await AwaitStatus(coordinator, s => s.Secondaries.Count == 0, "secondary dropped", TimeSpan.FromSeconds(30));
            Directory.Delete(Path.Combine(Root, joiner), recursive: true);
            var slowDisk = new McActors.Testing.StoreFaultInjector();
            slowDisk.SlowWrites(TimeSpan.FromMilliseconds(10)); // slow enough that the copy is still under way when the crash comes
            var slow = StartReplica(settings with { StoreFaults = slowDisk }, index, Crashable);
            replicas.Add(slow);
            await AwaitStatus(coordinator, s => s.Resyncing.Any(r => r.Replica == joiner && r.CopiedBytes > 0 && !r.Done), "copy under way", TimeSpan.FromSeconds(60));

            // It crashes mid-copy: its store says "resync in progress" and must not be trusted.
            await Stop(replicas, slow);
            var storeDirectory = Path.Combine(Root, joiner, SecondaryActor.StoreName);
            Assert.Throws<McActors.Storage.ResyncIncompleteException>(() => McActors.Storage.Rollback.RollbackStore.Recover(storeDirectory).Dispose());

            replicas.Add(StartReplica(settings, index, Crashable));
            var synced = await AwaitStatus(coordinator, s => s.Secondaries.Contains(joiner) && s.Resyncing.Count == 0, "resynced after the crash", TimeSpan.FromSeconds(90));
            await StopAndVerify(coordinator, replicas, synced.Primary!, joiner);
        }
        finally
        {
            await TerminateAll(replicas);
        }
    }
}
