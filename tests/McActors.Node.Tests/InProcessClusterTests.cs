using Akka.Actor;
using Akka.Cluster;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Node.Demo;
using McActors.Node.Hosting;
using McActors.Node.LocalCluster;
using McActors.Protocol;
using McActors.Replication;
using Xunit.Abstractions;

namespace McActors.Node.Tests;

/// <summary>
/// Three cluster nodes in one process (the TestKit's system is the arbiter, two replica systems
/// beside it), the real coordinator singleton on a shared SQLite journal, real replica actors and
/// data plane: checkpoints commit, the guest stops at a last one, and both replicas verify.
/// </summary>
[Collection(nameof(LocalClusterTests))]
public sealed class InProcessClusterTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly string Root = Path.Combine(Path.GetTempPath(), $"mcactors-inproc-{Guid.NewGuid():N}");
    private static readonly int[] Ports = FreePorts.Take(5);
    private static readonly string[] Seeds = [$"127.0.0.1:{Ports[0]}"];

    public InProcessClusterTests(ITestOutputHelper output)
        : base(NodeConfig.Build(Options(NodeKind.Arbiter, "arbiter", 0)), NodeOptions.SystemName, output)
    {
    }

    private static NodeOptions Options(NodeKind kind, string name, int index) =>
        new(kind, name, "127.0.0.1", Ports[index], Seeds, Path.Combine(Root, name), Path.Combine(Root, "coordinator.db"),
            index == 0 ? 0 : Ports[2 + index], ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB", "akka.loglevel = INFO"]);

    [Fact]
    public async Task A_primary_and_a_secondary_commit_checkpoints_and_hold_the_same_checkpoint_after_a_guest_stop()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config);
            var coordinator = CoordinatorSingleton.Start(Sys, settings);
            Cluster.Get(Sys).Join(Cluster.Get(Sys).SelfAddress);
            foreach (var (name, index) in new[] { ("replica-1", 1), ("replica-2", 2) })
            {
                var options = Options(NodeKind.Replica, name, index);
                var system = ActorSystem.Create(NodeOptions.SystemName, NodeConfig.Build(options));
                replicas.Add(system);
                var proxy = CoordinatorSingleton.Start(system, settings);
                system.ActorOf(ReplicaActor.Props(new ReplicaSettings(name, options.DataDirectory, "127.0.0.1", options.DataPort, settings), proxy), "replica");
            }

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

            var stopped = await coordinator.Ask<GuestStopped>(StopGuest.Instance, TimeSpan.FromSeconds(30));
            Assert.True(stopped.Epoch > status.LastCommitted);

            foreach (var system in replicas)
                await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance).WaitAsync(TimeSpan.FromSeconds(30));
            var verdict = DemoVerifier.Verify(Path.Combine(Root, status.Primary!), Path.Combine(Root, status.Secondaries[0]), stopped.Epoch);
            Assert.True(verdict.Verified, verdict.Detail);
        }
        finally
        {
            foreach (var system in replicas)
                await system.Terminate().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    protected override void AfterAll()
    {
        base.AfterAll();
        if (Directory.Exists(Root))
            Directory.Delete(Root, recursive: true);
    }
}
