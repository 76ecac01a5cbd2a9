using Akka.Actor;
using Akka.TestKit;
using McActors.Configuration;
using McActors.Protocol;

namespace McActors.Tests.Checkpointing;

/// <summary>Probes standing in for a primary and two secondaries, and the steps every test starts with.</summary>
internal sealed class ReplicaProbes(TestProbe primary, TestProbe s1, TestProbe s2)
{
    public const long Gen = 1;

    /// <summary>Persistence on the in-memory plugins: each TestKit instance has its own journal.</summary>
    public const string InMemoryPersistence = """
        akka.loglevel = INFO
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        """;

    public TestProbe Primary { get; } = primary;
    public TestProbe S1 { get; } = s1;
    public TestProbe S2 { get; } = s2;
    public IEnumerable<TestProbe> Secondaries => [S1, S2];
    public IEnumerable<TestProbe> All => [Primary, S1, S2];

    /// <summary>
    /// Three replicas; epochs only on CheckpointNow (the timer is 1 h) unless overridden; a 2 s
    /// prepare timeout, so a Prepare is resent only after 500 ms.
    /// </summary>
    public static McActorsSettings Settings(params string[] overrides) =>
        McActorsSettings.From(HoconFiles.Load([
            "mcactors.cluster.replicas = 3",
            "mcactors.checkpoint.epoch-interval = 1h",
            "mcactors.checkpoint.prepare-timeout = 2s",
            "mcactors.volume.size = 1 MiB",
            .. overrides]));

    public static string Id(TestProbe probe) => probe.Ref.Path.Name;

    public static void Register(IActorRef coordinator, TestProbe replica, int port = 7000)
    {
        coordinator.Tell(new RegisterReplica(Id(replica), replica.Ref, "127.0.0.1", port, null, 0, 0), replica.Ref);
        Assert.Equal(Id(replica), replica.ExpectMsg<ReplicaRegistered>().ReplicaId);
    }

    /// <summary>
    /// Registers primary, s1, s2 (in that order), checks the assignments and assumes the roles:
    /// secondaries first, the primary only once they all listen.
    /// </summary>
    public void StartRunning(IActorRef coordinator)
    {
        Register(coordinator, Primary, 7000);
        Register(coordinator, S1, 7001);
        Register(coordinator, S2, 7002);
        foreach (var s in Secondaries)
        {
            var assign = s.ExpectMsg<AssignSecondary>();
            Assert.Equal((Gen, Id(Primary), 0L), (assign.Generation, assign.PrimaryId, assign.LastCommitted));
        }
        AssumeSecondariesThenPrimary(coordinator);
    }

    /// <summary>The volume the coordinator created, as the first AssignPrimary said.</summary>
    public VolumeSpec? Volume { get; private set; }

    /// <summary>The secondaries assume; only then is the primary assigned, and it assumes too.</summary>
    public void AssumeSecondariesThenPrimary(IActorRef coordinator)
    {
        Primary.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        foreach (var s in Secondaries)
            coordinator.Tell(new RoleAssumed(Gen, Id(s), ReplicaRole.Secondary), s.Ref);
        var primary = Primary.ExpectMsg<AssignPrimary>();
        Volume = primary.Volume;
        Assert.Equal(Gen, primary.Generation);
        Assert.Equal([Id(S1), Id(S2)], primary.Secondaries.Select(e => e.ReplicaId));
        coordinator.Tell(new RoleAssumed(Gen, Id(Primary), ReplicaRole.Primary), Primary.Ref);
    }

    /// <summary>
    /// The primary gets CloseEpoch(n) and every listed secondary Prepare(n), skipping assignments
    /// resent on the way (a slow machine lets the assign-retry timer fire before a RoleAssumed lands).
    /// </summary>
    public void ExpectClose(long epoch, params TestProbe[] secondaries)
    {
        Assert.Equal(new CloseEpoch(Gen, epoch), Primary.FishForMessage<CloseEpoch>(_ => true, TimeSpan.FromSeconds(3)));
        foreach (var s in secondaries.Length > 0 ? secondaries : Secondaries)
            Assert.Equal(new Prepare(Gen, epoch), s.FishForMessage<Prepare>(_ => true, TimeSpan.FromSeconds(3)));
    }

    /// <summary>One whole checkpoint: CheckpointNow, close, both secondaries prepare, everyone hears Commit(n).</summary>
    public void CommitCheckpoint(IActorRef coordinator, long epoch)
    {
        coordinator.Tell(new CheckpointNow(Gen));
        ExpectClose(epoch);
        Closed(coordinator, epoch);
        Prepared(coordinator, S1, epoch);
        Prepared(coordinator, S2, epoch);
        ExpectCommit(epoch, All);
    }

    public void Closed(IActorRef coordinator, long epoch, long writes = 1, long bytes = 4096, bool guestStopped = false) =>
        coordinator.Tell(new EpochClosed(Gen, epoch, writes, bytes, guestStopped), Primary.Ref);

    public static void Prepared(IActorRef coordinator, TestProbe secondary, long epoch) =>
        coordinator.Tell(new Prepared(Gen, epoch, Id(secondary)), secondary.Ref);

    /// <summary>
    /// Every listed probe — the primary and the secondaries left in the set — gets Commit(n) naming
    /// that many secondaries, skipping resent Prepares on the way.
    /// </summary>
    public static void ExpectCommit(long epoch, params IEnumerable<TestProbe> probes)
    {
        var members = probes.ToList();
        foreach (var probe in members)
            Assert.Equal(new Commit(Gen, epoch, members.Count - 1), probe.FishForMessage<Commit>(m => true, TimeSpan.FromSeconds(3)));
    }
}
