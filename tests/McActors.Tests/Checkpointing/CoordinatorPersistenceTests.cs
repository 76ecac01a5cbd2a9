using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Protocol;
using Xunit.Abstractions;
using static McActors.Tests.Checkpointing.ReplicaProbes;

namespace McActors.Tests.Checkpointing;

/// <summary>
/// The coordinator on the shipped SQLite journal (hocon/persistence-sqlite.conf through
/// <see cref="CoordinatorJournal"/>): a new incarnation with the same persistence id recovers
/// generation, roles and the last committed checkpoint, repeats its Commit and goes on from there.
/// </summary>
public sealed class CoordinatorPersistenceTests : TestKit, IDisposable
{
    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(15);
    private readonly string _folder;
    private readonly ReplicaProbes _r;

    public CoordinatorPersistenceTests(ITestOutputHelper output) : this(NewFolder(), output)
    {
    }

    private CoordinatorPersistenceTests(string folder, ITestOutputHelper output)
        : base(JournalConfig(folder), output: output)
    {
        _folder = folder;
        _r = new ReplicaProbes(CreateTestProbe("p"), CreateTestProbe("s1"), CreateTestProbe("s2"));
    }

    private static string NewFolder() => Path.Combine(Path.GetTempPath(), "mcactors-coordinator-" + Guid.NewGuid().ToString("N"));

    private static Config JournalConfig(string folder)
    {
        // The shipped journal and serialization: recovery reads back what the journal serializer wrote.
        var shipped = ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(HoconFiles.DefaultFolder, "persistence-sqlite.conf")))
            .WithFallback(McActorsSettings.DefaultConfig);
        return CoordinatorJournal.Configure(ConfigurationFactory.ParseString("akka.loglevel = INFO").WithFallback(shipped), Path.Combine(folder, "DATA", "coordinator.db"));
    }

    /// <summary>
    /// Checkpoint 1 committed, then the coordinator moved: the second incarnation, to which both
    /// secondaries re-registered with their roles of generation <see cref="Gen"/>; the primary has not.
    /// </summary>
    private IActorRef MovedAfterCheckpoint1()
    {
        var settings = Settings();
        var first = RunningAtCheckpoint1(EpochCoordinator.Props(settings));
        Watch(first);
        Sys.Stop(first);
        ExpectTerminated(first);

        var second = Sys.ActorOf(EpochCoordinator.Props(settings));
        foreach (var probe in _r.Secondaries)
            second.Tell(new RegisterReplica(Id(probe), probe.Ref, "127.0.0.1", 7000, null, 1, 1, ReplicaRole.Secondary, Gen), probe.Ref);
        return second;
    }

    /// <summary>
    /// A coordinator of <paramref name="props"/> that recovered, assigned the roles and committed checkpoint 1.
    /// The first use of the SQLite plugin (schema creation, first write) is slow on a loaded machine:
    /// its recovery is waited for with <see cref="Startup"/>.
    /// </summary>
    private IActorRef RunningAtCheckpoint1(Props props, string? name = null)
    {
        var coordinator = Sys.ActorOf(props, name);
        coordinator.Tell(GetCoordinatorStatus.Instance);
        ExpectMsg<CoordinatorStatus>(Startup);
        _r.StartRunning(coordinator);
        _r.CommitCheckpoint(coordinator, 1);
        return coordinator;
    }

    [Fact]
    public void Configure_sets_both_connection_strings_to_the_absolute_path()
    {
        var config = CoordinatorJournal.Configure(Config.Empty, "relative/coordinator.db");
        var expected = "Data Source=" + Path.GetFullPath("relative/coordinator.db");

        Assert.Equal(expected, config.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Equal(expected, config.GetString("akka.persistence.snapshot-store.sql.connection-string"));
        Assert.False(string.IsNullOrEmpty(config.GetString("akka.persistence.journal.sql.class")));
        Directory.Delete(Path.GetFullPath("relative"), recursive: true);
    }

    [Fact]
    public void A_new_incarnation_recovers_roles_and_last_committed_and_resends_Commit()
    {
        // Snapshots every 3 events: recovery goes through a snapshot and the events after it.
        var settings = Settings("mcactors.coordinator.snapshot-every = 3");
        var first = Sys.ActorOf(EpochCoordinator.Props(settings));
        // The first use of the SQLite plugin (schema creation, first write) is slow on a loaded
        // machine: wait for the coordinator to have recovered and created its volume.
        first.Tell(GetCoordinatorStatus.Instance);
        ExpectMsg<CoordinatorStatus>(Startup);
        _r.StartRunning(first);
        for (var epoch = 1; epoch <= 3; epoch++)
        {
            first.Tell(new CheckpointNow(Gen));
            _r.ExpectClose(epoch);
            _r.Closed(first, epoch, writes: 2, bytes: 1024);
            Prepared(first, _r.S1, epoch);
            Prepared(first, _r.S2, epoch);
            ExpectCommit(epoch, _r.All);
        }
        Watch(first);
        Sys.Stop(first);
        ExpectTerminated(first);

        var second = Sys.ActorOf(EpochCoordinator.Props(settings));
        second.Tell(GetCoordinatorStatus.Instance);
        var status = ExpectMsg<CoordinatorStatus>(Startup);
        Assert.Equal((Gen, "p", 3L, 3L, 6L, 3072L), (status.Generation, status.Primary, status.LastCommitted, status.CheckpointsCommitted, status.WritesCommitted, status.BytesCommitted));
        Assert.Equal(["s1", "s2"], status.Secondaries);

        // Replicas re-register on their own (they keep resending); each hears its assignment and
        // Commit(3) again, both idempotent for a replica that kept running.
        foreach (var probe in _r.Secondaries)
        {
            second.Tell(new RegisterReplica(Id(probe), probe.Ref, "127.0.0.1", 7000, null, 3, 3), probe.Ref);
            Assert.Equal(new ReplicaRegistered(Id(probe), Gen, "p"), probe.ExpectMsg<ReplicaRegistered>());
            var assign = probe.ExpectMsg<AssignSecondary>();
            Assert.Equal((Gen, "p", 3L), (assign.Generation, assign.PrimaryId, assign.LastCommitted));
            Assert.Equal(new Commit(Gen, 3, 2), probe.ExpectMsg<Commit>());
        }
        second.Tell(new RegisterReplica("p", _r.Primary.Ref, "127.0.0.1", 7000, null, 3, 3, ReplicaRole.Primary, Gen), _r.Primary.Ref); // it still runs
        Assert.Equal(new ReplicaRegistered("p", Gen, "p"), _r.Primary.ExpectMsg<ReplicaRegistered>());
        var primary = _r.Primary.ExpectMsg<AssignPrimary>();
        Assert.Equal((Gen, 3L, 2), (primary.Generation, primary.LastCommitted, primary.Secondaries.Count));
        Assert.Equal(new Commit(Gen, 3, 2), _r.Primary.ExpectMsg<Commit>());

        _r.CommitCheckpoint(second, 4);
    }

    [Fact]
    public void A_primary_that_restarted_while_the_coordinator_moved_is_failed_over_not_resumed()
    {
        var second = MovedAfterCheckpoint1();
        // The primary comes back with no role: its image holds writes after checkpoint 1.
        var restarted = CreateTestProbe("p-restarted");
        second.Tell(new RegisterReplica("p", restarted.Ref, "127.0.0.1", 7000, null, 0, 0), restarted.Ref);
        var follow = _r.S2.FishForMessage<AssignSecondary>(a => a.Generation == 2, Startup);
        Assert.Equal(1, follow.LastCommitted);
        restarted.FishForMessage<ReplicaRegistered>(_ => true);
        restarted.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // no AssignPrimary for it
    }

    [Fact]
    public void A_primary_registering_mid_promotion_after_the_coordinator_moved_is_not_failed_over()
    {
        var settings = Settings();
        var first = RunningAtCheckpoint1(EpochCoordinator.Props(settings));
        // p dies: s1 (registered first, both prepared 1) becomes primary of generation 2; s2 follows it.
        Sys.Stop(_r.Primary.Ref);
        Assert.Equal("s1", _r.S2.FishForMessage<AssignSecondary>(a => a.Generation == 2, Startup).PrimaryId);
        first.Tell(new RoleAssumed(2, "s2", ReplicaRole.Secondary), _r.S2.Ref);
        Assert.Equal(2, _r.S1.FishForMessage<AssignPrimary>(a => a.Generation == 2, Startup).Generation);
        // The coordinator moves while s1 rolls its store back for the promotion.
        Watch(first);
        Sys.Stop(first);
        ExpectTerminated(first);

        var second = Sys.ActorOf(EpochCoordinator.Props(settings));
        second.Tell(new RegisterReplica("s2", _r.S2.Ref, "127.0.0.1", 7002, null, 1, 1, ReplicaRole.Secondary, 2), _r.S2.Ref);
        // s1 runs no role yet: it is becoming primary of generation 2, which is not a restart.
        second.Tell(new RegisterReplica("s1", _r.S1.Ref, "127.0.0.1", 7001, null, 1, 1, Assuming: ReplicaRole.Primary, AssumingGeneration: 2), _r.S1.Ref);
        // The assignment of generation 2 is finished (s2 hears its own again), not replaced.
        Assert.Equal("s1", _r.S2.FishForMessage<AssignSecondary>(a => a.Generation == 2, Startup).PrimaryId);
        second.Tell(new RoleAssumed(2, "s2", ReplicaRole.Secondary), _r.S2.Ref);
        Assert.Equal(2, _r.S1.FishForMessage<AssignPrimary>(a => a.Generation == 2, Startup).Generation);
        second.Tell(new RoleAssumed(2, "s1", ReplicaRole.Primary), _r.S1.Ref);
        second.Tell(new CheckpointNow(2));
        Assert.Equal(new CloseEpoch(2, 2), _r.S1.FishForMessage<CloseEpoch>(_ => true, Startup));
        Assert.Equal(new Prepare(2, 2), _r.S2.FishForMessage<Prepare>(_ => true, Startup));
        second.Tell(GetCoordinatorStatus.Instance);
        var status = ExpectMsg<CoordinatorStatus>();
        Assert.Equal((2L, "s1", 1L), (status.Generation, status.Primary, status.Failovers)); // no needless generation 3
    }

    [Fact]
    public void A_primary_registering_with_no_role_and_no_role_change_after_the_coordinator_moved_is_failed_over()
    {
        var second = MovedAfterCheckpoint1();
        // Becoming a secondary of this generation is no promotion: p restarted and lost its role.
        var restarted = CreateTestProbe("p-restarted");
        second.Tell(new RegisterReplica("p", restarted.Ref, "127.0.0.1", 7000, null, 0, 0, Assuming: ReplicaRole.Secondary, AssumingGeneration: Gen), restarted.Ref);
        Assert.Equal("s1", _r.S2.FishForMessage<AssignSecondary>(a => a.Generation == 2, Startup).PrimaryId);
        restarted.FishForMessage<ReplicaRegistered>(_ => true);
        restarted.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // out of the replica set: no assignment
    }

    [Fact]
    public void Of_two_coordinators_on_one_journal_only_one_appends_and_the_one_refused_restarts_and_recovers_the_other_s_decisions()
    {
        var settings = Settings("mcactors.coordinator.restart-backoff.min = 200ms", "mcactors.coordinator.restart-backoff.max = 1s");
        var a = RunningAtCheckpoint1(CoordinatorSingleton.SupervisedProps(settings), "a");

        // A second coordinator on the same journal (a singleton that moved while the old one still
        // runs): it resumes generation 1 and commits checkpoint 2 first.
        var b = Sys.ActorOf(EpochCoordinator.Props(settings), "b");
        b.Tell(GetCoordinatorStatus.Instance);
        Assert.Equal(1, ExpectMsg<CoordinatorStatus>(Startup).LastCommitted);
        foreach (var probe in _r.Secondaries)
            b.Tell(new RegisterReplica(Id(probe), probe.Ref, "127.0.0.1", 7000, null, 1, 1, ReplicaRole.Secondary, Gen), probe.Ref);
        b.Tell(new RegisterReplica("p", _r.Primary.Ref, "127.0.0.1", 7000, null, 1, 1, ReplicaRole.Primary, Gen), _r.Primary.Ref);
        b.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2);
        _r.Closed(b, 2, writes: 7);
        Prepared(b, _r.S1, 2);
        Prepared(b, _r.S2, 2);
        ExpectCommit(2, _r.All);

        // The first one decides checkpoint 2 too: the journal refuses its append, it stops, and
        // its supervisor starts it again; recovered, it holds the other's decision, not its own.
        a.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2);
        _r.Closed(a, 2, writes: 5);
        Prepared(a, _r.S1, 2);
        EventFilter.Error(contains: "Failed to persist").ExpectOne(Startup, () => Prepared(a, _r.S2, 2));
        AwaitAssert(() =>
        {
            // Asked through the supervisor: while the coordinator is stopped the question is lost, so ask again.
            a.Tell(GetCoordinatorStatus.Instance);
            var status = ExpectMsg<CoordinatorStatus>(TimeSpan.FromSeconds(1));
            Assert.Equal((2L, 1L + 7L), (status.LastCommitted, status.WritesCommitted));
        }, Startup, TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void A_coordinator_superseded_by_a_newer_incarnation_on_the_journal_can_append_nothing_more()
    {
        var settings = Settings();
        var old = RunningAtCheckpoint1(EpochCoordinator.Props(settings), "old");

        // The singleton moved while the old coordinator still runs: the new one only recovers.
        var newer = Sys.ActorOf(EpochCoordinator.Props(settings), "newer");
        newer.Tell(GetCoordinatorStatus.Instance);
        Assert.Equal(1, ExpectMsg<CoordinatorStatus>(Startup).LastCommitted);

        // The old one decides checkpoint 2 afterwards: its append is refused, and it stops.
        Watch(old);
        old.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2);
        _r.Closed(old, 2);
        Prepared(old, _r.S1, 2);
        EventFilter.Error(contains: "Failed to persist").ExpectOne(Startup, () => Prepared(old, _r.S2, 2));
        ExpectTerminated(old, Startup);
        Assert.DoesNotContain(_r.Primary.ReceiveWhile<object>(TimeSpan.FromMilliseconds(300), m => m), m => m is Commit { Epoch: 2 });

        // The journal holds no decision of the old coordinator after the new one took over.
        var third = Sys.ActorOf(EpochCoordinator.Props(settings), "third");
        third.Tell(GetCoordinatorStatus.Instance);
        var status = ExpectMsg<CoordinatorStatus>(Startup);
        Assert.Equal((Gen, 1L, 1L), (status.Generation, status.LastCommitted, status.CheckpointsCommitted));
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Directory.Exists(_folder))
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(_folder, recursive: true);
        }
    }
}
