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
/// The test kit's <see cref="Testing.Xunit.InProcess.InProcessCluster{TSelf}"/> plus the demo's check
/// of a stopped cluster: the replicas hold the same checkpoint.
/// </summary>
public abstract class InProcessCluster<TSelf>(ITestOutputHelper output, NodeKind self = NodeKind.Arbiter)
    : Testing.Xunit.InProcess.InProcessCluster<TSelf>(output, self)
{
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

            // With the other survivor as secondary: on a loaded machine it may be left out of generation 2
            // (it assumed its role too late) and come back by a resync, which is the protocol working.
            var after = await AwaitStatus(coordinator, s => s.Generation == 2 && s.Primary != "replica-1" && s.Secondaries.Count == 1
                && s.LastCommitted >= before.LastCommitted + 10, "checkpoints after the move and failover, with one secondary", TimeSpan.FromSeconds(90));
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
