using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Protocol;
using McActors.Replication;
using McActors.TestSupport;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>
/// The node's replica actor and its role changes, with a TestProbe as the coordinator and real
/// primary and secondary actors on disk: promotion, self-fencing, and a restart for a resync.
/// </summary>
public sealed class ReplicaActorTests : TestKit, IDisposable
{
    private const long VolumeSize = 4 << 20;
    private readonly TempDirectory _directory = new("mcactors-replica");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), VolumeSize, 4096);
    private readonly TestProbe _coordinator;
    private readonly IActorRef _replica;

    public ReplicaActorTests(ITestOutputHelper output) : base(Config(), output: output)
    {
        _coordinator = CreateTestProbe("coordinator");
        var settings = McActorsSettings.From(Sys.Settings.Config) with { GuestMaxOutstanding = 2 };
        _replica = Sys.ActorOf(ReplicaActor.Props(new ReplicaSettings("r1", _directory.Path, "127.0.0.1", FreePort(), settings), _coordinator.Ref), "replica");
    }

    private static Config Config() =>
        McActorsSettings.DefaultConfig;

    void IDisposable.Dispose()
    {
        Shutdown();
        _directory.Dispose();
    }

    private T Expect<T>(Func<T, bool>? match = null) =>
        _coordinator.FishForMessage<T>(m => match is null || match(m), TimeSpan.FromSeconds(10));

    private void RunAsSecondary(long generation)
    {
        _replica.Tell(new AssignSecondary(generation, _volume, "p", 0), _coordinator.Ref);
        Assert.Equal(ReplicaRole.Secondary, Expect<RoleAssumed>().Role);
    }

    [Fact]
    public void A_secondary_told_to_be_primary_rolls_back_hands_its_image_over_and_runs_the_guest()
    {
        RunAsSecondary(1);
        _replica.Tell(new AssignPrimary(2, _volume, [], 0), _coordinator.Ref);

        var promoted = Expect<Promoted>();
        Assert.Equal((2L, "r1", 0L), (promoted.Generation, promoted.ReplicaId, promoted.Checkpoint));
        Assert.Equal(new RoleAssumed(2, "r1", ReplicaRole.Primary), Expect<RoleAssumed>());
        // It now registers as the running primary of generation 2, and the guest writes to the store's image.
        var registration = Expect<RegisterReplica>(r => r.Role is not null);
        Assert.Equal((ReplicaRole.Primary, 2L), (registration.Role, registration.RoleGeneration));
        AwaitAssert(() => Assert.True(new FileInfo(PrimaryVolumeFiles.ImagePath(_directory.Path)).Length == VolumeSize));
        // The store was detached: its state no longer claims to describe the image.
        Assert.False(File.Exists(Path.Combine(PrimaryVolumeFiles.ImageDirectory(_directory.Path), "store.state")));
    }

    [Fact]
    public void A_primary_that_ran_alone_and_restarts_says_what_its_store_vouches_for_and_is_promoted_back_to_the_last_committed_checkpoint()
    {
        _replica.Tell(new AssignPrimary(1, _volume, [], 0), _coordinator.Ref);
        Assert.Equal(ReplicaRole.Primary, Expect<RoleAssumed>().Role);
        foreach (var epoch in new long[] { 1, 2, 3 })
        {
            var before = PrimaryWrites();
            AwaitAssert(() => Assert.True(PrimaryWrites() > before + 10), TimeSpan.FromSeconds(10));
            _replica.Tell(new CloseEpoch(1, epoch), _coordinator.Ref);
            Expect<EpochClosed>(c => c.Epoch == epoch);
            if (epoch < 3) // 3 is prepared on the primary's disk, never committed
                _replica.Tell(new Commit(1, epoch, 0), _coordinator.Ref);
        }
        var last = PrimaryWrites();
        AwaitAssert(() => Assert.True(PrimaryWrites() > last + 10), TimeSpan.FromSeconds(10));
        Watch(_replica);
        Sys.Stop(_replica);
        ExpectTerminated(_replica);

        // The node restarts: with no role yet, it reports the checkpoints its store can be rolled back to.
        var restarted = Sys.ActorOf(ReplicaActor.Props(new ReplicaSettings("r1", _directory.Path, "127.0.0.1", FreePort(),
            McActorsSettings.From(Sys.Settings.Config) with { GuestMaxOutstanding = 2 }), _coordinator.Ref), "replica-restarted");
        var registration = Expect<RegisterReplica>(r => r.Replica.Equals(restarted));
        Assert.Equal((null, _volume.VolumeId, 2L, 3L), (registration.Role, registration.VolumeId, registration.Committed, registration.Prepared));

        restarted.Tell(new AssignPrimary(2, _volume, [], LastCommitted: 2), _coordinator.Ref);
        var promoted = Expect<Promoted>();
        Assert.Equal((2L, 2L), (promoted.Generation, promoted.Checkpoint));
        Assert.True(promoted.RolledBackBlocks > 0, "the writes after checkpoint 2 were not rolled back");
        Assert.Equal(new RoleAssumed(2, "r1", ReplicaRole.Primary), Expect<RoleAssumed>());
    }

    private long PrimaryWrites()
    {
        _replica.Tell(GetPrimaryStatus.Instance, TestActor);
        return ExpectMsg<PrimaryStatus>().Writes;
    }

    [Fact]
    public void A_primary_that_hears_of_a_newer_generation_stops_its_role()
    {
        _replica.Tell(new AssignPrimary(1, _volume, [], 0), _coordinator.Ref);
        Assert.Equal(ReplicaRole.Primary, Expect<RoleAssumed>().Role);

        EventFilter.Warning(contains: "generation 2 has begun").ExpectOne(() => _replica.Tell(new ReplicaRegistered("r1", 2)));
        // Fenced: it registers with no role, and this planned stop is not reported as a failure.
        Expect<RegisterReplica>(r => r.Role is null);
        var after = _coordinator.ReceiveWhile<object>(TimeSpan.FromSeconds(1.5), m => m);
        Assert.DoesNotContain(after, m => m is ReplicaFailed);
        Assert.All(after.OfType<RegisterReplica>(), r => Assert.Null(r.Role));
    }

    [Fact]
    public void A_running_secondary_told_to_resync_starts_afresh_and_offers_its_digest()
    {
        RunAsSecondary(1);
        _replica.Tell(new AssignSecondary(1, _volume, "p", 0, Resync: true), _coordinator.Ref);
        var ready = Expect<ResyncReady>();
        Assert.Equal((1L, "r1"), (ready.Generation, ready.ReplicaId));
        Assert.NotNull(ready.Digest);
        Assert.Equal(VolumeSize / ready.ChunkBytes * 16, ready.Digest!.Length);
    }

    [Fact]
    public void A_secondary_told_it_left_the_replica_set_stops_its_role_and_registers_with_none()
    {
        RunAsSecondary(1);
        Expect<RegisterReplica>(r => r.Role == ReplicaRole.Secondary);
        EventFilter.Warning(contains: "dropped from the replica set of generation 1").ExpectOne(() =>
            _replica.Tell(new LeftReplicaSet(1, "r1", "did not answer Prepared"), _coordinator.Ref));
        // A planned stop: no ReplicaFailed, and it registers with no role (to be resynced).
        Expect<RegisterReplica>(r => r.Role is null);
        var after = _coordinator.ReceiveWhile<object>(TimeSpan.FromSeconds(1.5), m => m);
        Assert.DoesNotContain(after, m => m is ReplicaFailed);
        Assert.All(after.OfType<RegisterReplica>(), r => Assert.Null(r.Role));
    }

    [Fact]
    public async Task A_role_whose_actor_stops_unasked_is_reported_as_a_failed_replica_which_then_registers_with_none()
    {
        RunAsSecondary(1);
        var role = await Sys.ActorSelection(_replica.Path / "secondary-1").ResolveOne(TimeSpan.FromSeconds(5));

        Sys.Stop(role);
        Assert.Equal(new ReplicaFailed(1, "r1", "Secondary actor stopped"), Expect<ReplicaFailed>());
        Expect<RegisterReplica>(r => r.Role is null && r.Assuming is null);
    }

    [Fact]
    public void A_primary_told_to_be_a_secondary_of_a_newer_generation_stops_first_then_starts_that_secondary()
    {
        _replica.Tell(new AssignPrimary(1, _volume, [], 0), _coordinator.Ref);
        Assert.Equal(ReplicaRole.Primary, Expect<RoleAssumed>().Role);

        EventFilter.Warning(contains: "stopping the primary first").ExpectOne(() =>
            _replica.Tell(new AssignSecondary(2, _volume, "p", 0), _coordinator.Ref));
        // The primary's stop is planned (not reported); the secondary of generation 2 starts on the
        // primary's detached image, which no store vouches for, and asks for a resync.
        var failed = Expect<ReplicaFailed>();
        Assert.Equal(2, failed.Generation);
        Assert.Contains("resync required", failed.Reason);
        var after = _coordinator.ReceiveWhile<object>(TimeSpan.FromSeconds(1), m => m);
        Assert.DoesNotContain(after.Prepend(failed).OfType<ReplicaFailed>(), f => f.Reason == "Primary actor stopped");
    }

    [Fact]
    public void A_stale_LeftReplicaSet_is_refused_and_the_secondary_keeps_running()
    {
        RunAsSecondary(2);
        _replica.Tell(new LeftReplicaSet(1, "r1", "old news"), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(2, 1, nameof(LeftReplicaSet)), Expect<StaleGeneration>());
        var registration = Expect<RegisterReplica>();
        Assert.Equal((ReplicaRole.Secondary, 2L), (registration.Role, registration.RoleGeneration));
    }

    [Fact]
    public void A_late_LeftReplicaSet_about_an_earlier_membership_leaves_the_resynced_secondary_running()
    {
        const long first = (1L << 32) + 1, second = (2L << 32) + 1; // attempts of two coordinator incarnations
        ResyncAsSecondary(1, first);
        _replica.Tell(new LeftReplicaSet(1, "r1", "did not answer Prepared", first), _coordinator.Ref);
        Expect<RegisterReplica>(r => r.Role is null);
        ResyncAsSecondary(1, second);

        // The old incarnation's message, late: about the membership of the first attempt, not this one.
        _replica.Tell(new LeftReplicaSet(1, "r1", "did not answer Prepared", first), _coordinator.Ref);
        var after = _coordinator.ReceiveWhile<object>(TimeSpan.FromSeconds(1.5), m => m);
        Assert.DoesNotContain(after, m => m is ReplicaFailed);
        Assert.NotEmpty(after.OfType<RegisterReplica>());
        Assert.All(after.OfType<RegisterReplica>(), r => Assert.Equal((ReplicaRole.Secondary, 1L), (r.Role, r.RoleGeneration)));

        // About the current membership, it stops the secondary.
        EventFilter.Warning(contains: "dropped from the replica set of generation 1").ExpectOne(() =>
            _replica.Tell(new LeftReplicaSet(1, "r1", "did not answer Prepared", second), _coordinator.Ref));
        Expect<RegisterReplica>(r => r.Role is null);
    }

    /// <summary>Assigns a resync, waits for the joining secondary's ResyncReady and its registration as a running secondary.</summary>
    private void ResyncAsSecondary(long generation, long attempt)
    {
        _replica.Tell(new AssignSecondary(generation, _volume, "p", 0, Resync: true, ResyncAttempt: attempt), _coordinator.Ref);
        Assert.Equal(attempt, Expect<ResyncReady>().Attempt);
        Expect<RegisterReplica>(r => r.Role == ReplicaRole.Secondary);
    }

    private static int FreePort()
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
