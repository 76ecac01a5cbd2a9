using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using McActors.Checkpointing;
using McActors.Checkpointing.Policies;
using McActors.Configuration;
using McActors.Protocol;
using Xunit.Abstractions;
using static McActors.Tests.Checkpointing.ReplicaProbes;

namespace McActors.Tests.Checkpointing;

/// <summary>The checkpoint policies as plain logic, and how the configuration names one.</summary>
public sealed class CheckpointPolicyTests
{
    private static CheckpointPolicyView View(TimeSpan? since = null, int inFlight = 0, long bytes = 0, long writes = 0,
        bool output = false, bool due = false) =>
        new(since ?? TimeSpan.FromMilliseconds(10), inFlight, bytes, writes, output, due);

    [Fact]
    public void Fixed_interval_closes_when_the_interval_is_due_or_output_waits_and_otherwise_waits_for_the_next_tick()
    {
        var policy = new FixedIntervalPolicy();
        Assert.Equal(CloseNow.Instance, policy.Decide(View(due: true)));
        Assert.Equal(CloseNow.Instance, policy.Decide(View(output: true)));
        // However much the epoch holds: size is not its business.
        Assert.Equal(Wait.UntilNextEvent, policy.Decide(View(bytes: 1L << 30, writes: 100_000)));
    }

    [Fact]
    public void Dirty_bytes_closes_at_the_threshold_when_output_waits_or_at_the_interval_and_not_below_it()
    {
        var policy = new DirtyBytesPolicy(1 << 20);
        Assert.Equal(Wait.UntilNextEvent, policy.Decide(View(bytes: (1 << 20) - 1, writes: 255)));
        Assert.Equal(CloseNow.Instance, policy.Decide(View(bytes: 1 << 20, writes: 256)));
        Assert.Equal(CloseNow.Instance, policy.Decide(View(output: true)));
        Assert.Equal(CloseNow.Instance, policy.Decide(View(due: true)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirtyBytesPolicy(0));
    }

    [Fact]
    public void On_demand_closes_only_when_output_waits()
    {
        var policy = new OnDemandPolicy();
        Assert.Equal(Wait.UntilNextEvent, policy.Decide(View(due: true, since: TimeSpan.FromHours(1), bytes: 1L << 30)));
        Assert.Equal(CloseNow.Instance, policy.Decide(View(output: true)));
    }

    [Fact]
    public void The_default_policy_is_the_fixed_interval_and_each_policy_is_made_from_its_name_or_type()
    {
        var defaults = McActorsSettings.From(HoconFiles.Load());
        Assert.Equal((FixedIntervalPolicy.Name, 16L << 20), (defaults.CheckpointPolicy, defaults.DirtyBytesThreshold));
        Assert.IsType<FixedIntervalPolicy>(CheckpointPolicies.Create(defaults));

        var dirty = McActorsSettings.From(HoconFiles.Load(["mcactors.checkpoint.policy = dirty-bytes", "mcactors.checkpoint.dirty-bytes.threshold = 2 MiB"]));
        Assert.Equal(2L << 20, Assert.IsType<DirtyBytesPolicy>(CheckpointPolicies.Create(dirty)).Threshold);
        Assert.IsType<OnDemandPolicy>(CheckpointPolicies.Create(McActorsSettings.From(HoconFiles.Load(["mcactors.checkpoint.policy = on-demand"]))));

        var custom = McActorsSettings.From(HoconFiles.Load([$"mcactors.checkpoint.policy = \"{WritesPolicy.TypeName}\"", "mcactors.checkpoint.writes-policy.writes = 7"]));
        Assert.Equal(7, Assert.IsType<WritesPolicy>(CheckpointPolicies.Create(custom)).Writes);
    }

    [Theory]
    [InlineData("mcactors.checkpoint.policy = sometimes", "mcactors.checkpoint.policy")]
    [InlineData("mcactors.checkpoint.policy = \"System.String, System.Private.CoreLib\"", "not a concrete ICheckpointPolicy")]
    [InlineData("mcactors.checkpoint.dirty-bytes.threshold = 0", "mcactors.checkpoint.dirty-bytes.threshold")]
    public void A_policy_that_cannot_be_made_is_refused_with_the_key_named(string pair, string named)
    {
        var e = Assert.Throws<ConfigurationException>(() => McActorsSettings.From(HoconFiles.Load([pair])));
        Assert.Contains(named, e.Message);
    }
}

/// <summary>A custom policy for the tests: closes once the open epoch holds mcactors.checkpoint.writes-policy.writes writes, and never else.</summary>
public sealed class WritesPolicy(McActorsSettings settings) : ICheckpointPolicy
{
    public static readonly string TypeName = $"{typeof(WritesPolicy).FullName}, {typeof(WritesPolicy).Assembly.GetName().Name}";

    public long Writes { get; } = settings.CheckpointSection.GetLong("writes-policy.writes", 3);

    public CheckpointDecision Decide(CheckpointPolicyView view) => view.OpenEpochWrites >= Writes ? CloseNow.Instance : Wait.UntilNextEvent;
}

/// <summary>A custom policy for the tests: an epoch closes 300 ms after the last close, by its own timer.</summary>
public sealed class EveryThirdOfASecondPolicy : ICheckpointPolicy
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(300);

    public CheckpointDecision Decide(CheckpointPolicyView view) => view.SinceLastClose >= Period ? CloseNow.Instance : new Wait(Period - view.SinceLastClose);
}

/// <summary>The coordinator closes epochs when its configured policy says so.</summary>
public sealed class CoordinatorPolicyTests : TestKit
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private readonly ReplicaProbes _r;

    public CoordinatorPolicyTests(ITestOutputHelper output) : base(InMemoryPersistence, output: output) =>
        _r = new ReplicaProbes(CreateTestProbe("p"), CreateTestProbe("s1"), CreateTestProbe("s2"));

    private IActorRef Start(McActorsSettings settings)
    {
        var coordinator = Sys.ActorOf(EpochCoordinator.Props(settings), "coordinator");
        _r.StartRunning(coordinator);
        return coordinator;
    }

    [Fact]
    public void A_custom_policy_type_named_in_the_configuration_decides_when_epochs_close()
    {
        var coordinator = Start(Settings($"mcactors.checkpoint.policy = \"{WritesPolicy.TypeName}\"", "mcactors.checkpoint.writes-policy.writes = 3"));

        // It ignores waiting output and a small epoch; the fixed interval would have closed at once.
        coordinator.Tell(new CheckpointNow(Gen));
        coordinator.Tell(new EpochProgress(Gen, 1, 2, 8192));
        _r.Primary.ExpectNoMsg(Quiet);

        coordinator.Tell(new EpochProgress(Gen, 1, 3, 12288));
        _r.ExpectClose(1);
        // A late report of the epoch just closed is not taken for the next one.
        coordinator.Tell(new EpochProgress(Gen, 1, 5, 20480));
        _r.Primary.ExpectNoMsg(Quiet);
    }

    [Fact]
    public void A_policy_that_asks_to_wait_is_asked_again_when_the_wait_runs_out()
    {
        var type = typeof(EveryThirdOfASecondPolicy);
        // The epoch-interval clock (1 h) never ticks here: only the policy's own waits close epochs.
        var coordinator = Start(Settings($"mcactors.checkpoint.policy = \"{type.FullName}, {type.Assembly.GetName().Name}\""));

        _r.Primary.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        _r.ExpectClose(1);
        _r.ExpectClose(2);
    }

    [Fact]
    public void The_dirty_bytes_policy_closes_an_epoch_once_the_primary_reports_the_threshold_and_when_output_waits()
    {
        var coordinator = Start(Settings("mcactors.checkpoint.policy = dirty-bytes", "mcactors.checkpoint.dirty-bytes.threshold = 1 MiB"));

        coordinator.Tell(new EpochProgress(Gen, 1, 10, 512 << 10));
        _r.Primary.ExpectNoMsg(Quiet);
        coordinator.Tell(new EpochProgress(Gen, 1, 20, 1 << 20));
        _r.ExpectClose(1);

        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(2);
    }

    [Fact]
    public void The_on_demand_policy_closes_no_epoch_at_the_interval_only_when_output_waits()
    {
        var coordinator = Start(Settings("mcactors.checkpoint.policy = on-demand", "mcactors.checkpoint.epoch-interval = 50ms"));

        _r.Primary.ExpectNoMsg(Quiet);
        coordinator.Tell(new CheckpointNow(Gen));
        _r.ExpectClose(1);
    }
}
