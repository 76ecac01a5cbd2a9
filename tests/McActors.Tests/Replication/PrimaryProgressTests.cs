using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>The primary reports the open epoch's size for a size-based checkpoint policy, and only then.</summary>
public sealed class PrimaryProgressTests(ITestOutputHelper output) : TestKit(McActorsSettings.DefaultConfig, output: output), IDisposable
{
    private const long VolumeSize = 4 << 20;
    private const int Writes = 64;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mcactors-progress-{Guid.NewGuid():N}");

    void IDisposable.Dispose()
    {
        Shutdown();
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }

    private (IActorRef Primary, TestProbe Coordinator) Start(string policy)
    {
        var coordinator = CreateTestProbe();
        var settings = McActorsSettings.From(Sys.Settings.Config) with { CheckpointPolicy = policy, DirtyBytesThreshold = 64 << 10 };
        Props Guest(GuestContext guest) => SyntheticGuestActor.Props(guest, new SyntheticGuestOptions(3, VolumeSize, MaxOutstanding: 4, WriteLimit: Writes));
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _directory, coordinator.Ref, settings, Guest, streams: new InMemoryReplicaStreams()), "primary");
        primary.Tell(new AssignPrimary(1, new VolumeSpec(Guid.NewGuid(), VolumeSize, 4096), [], LastCommitted: 0), coordinator.Ref);
        coordinator.ExpectMsg<RoleAssumed>(Patience);
        AwaitAssert(() =>
        {
            primary.Tell(GetPrimaryStatus.Instance, TestActor);
            Assert.Equal(Writes, ExpectMsg<PrimaryStatus>().Writes);
        }, Patience);
        return (primary, coordinator);
    }

    [Fact]
    public void Under_the_dirty_bytes_policy_the_open_epoch_is_reported_at_every_quarter_of_the_threshold()
    {
        const long step = 16 << 10; // a quarter of the 64 KiB threshold
        var (primary, coordinator) = Start("dirty-bytes");
        primary.Tell(GetPrimaryStatus.Instance, TestActor);
        var total = ExpectMsg<PrimaryStatus>().Bytes;
        var reports = coordinator.ReceiveWhile(TimeSpan.FromMilliseconds(300), m => m as EpochProgress).OfType<EpochProgress>().ToList();
        // One report per quarter crossed (a large write may cross several at once), the last at the last crossing.
        Assert.NotEmpty(reports);
        Assert.All(reports.Zip(reports.Skip(1)), pair => Assert.True(pair.Item1.Bytes / step < pair.Item2.Bytes / step, $"{pair.Item1.Bytes} then {pair.Item2.Bytes}"));
        Assert.Equal(total / step, reports[^1].Bytes / step);
        Assert.All(reports, r => Assert.Equal((1L, 1L), (r.Generation, r.Epoch)));
    }

    [Fact]
    public void Under_the_fixed_interval_policy_nothing_is_reported()
    {
        var (_, coordinator) = Start("fixed-interval");
        Assert.DoesNotContain(coordinator.ReceiveWhile(TimeSpan.FromMilliseconds(300), m => m), m => m is EpochProgress);
    }
}
