using McActors.Node.Chaos;

namespace McActors.Node.Tests;

/// <summary>Chaos's network faults: their plans, and one real run of each through the runner (root, as in CI).</summary>
public sealed class NetnsChaosPlanTests
{
    [Fact]
    public void Network_faults_are_not_drawn_by_default_and_have_command_line_names()
    {
        Assert.All(NetworkFaults.All, f => Assert.DoesNotContain(f, NodeFaults.Available));
        Assert.Equal(Enum.GetValues<ChaosFault>().Length, NodeFaults.Available.Count + NetworkFaults.All.Count);
        Assert.Equal(
            ["partition-primary-net", "partition-coordinator-minority", "one-way-primary-inbound", "one-way-primary-outbound", "flapping-primary-link", "cut-during-resync"],
            NetworkFaults.All.Select(ChaosPlan.NameOf));
    }

    [Fact]
    public void A_coordinator_minority_plan_has_three_replicas_so_that_the_arbiter_and_the_primary_are_a_minority_of_voters()
    {
        for (var i = 0; i < 20; i++)
        {
            var plan = ChaosPlan.From(ChaosPlan.RunSeed(ChaosTests.FixedSeed, i), [ChaosFault.PartitionCoordinatorMinority]);
            Assert.Equal(3, plan.Replicas);
            Assert.StartsWith("partition-coordinator-minority@", plan.Label);
        }
        // Other faults' plans are what they were: the draw sequence is unchanged.
        var kill = ChaosPlan.From(ChaosTests.FixedSeed, [ChaosFault.KillPrimary]);
        var net = ChaosPlan.From(ChaosTests.FixedSeed, [ChaosFault.PartitionPrimaryNet]);
        Assert.Equal(kill with { Fault = ChaosFault.PartitionPrimaryNet }, net);
        Assert.Equal("cut-during-resync", ChaosPlan.From(1, [ChaosFault.CutDuringResync]).Label);
    }
}

[Collection(nameof(LocalClusterTests))] // one multi-process cluster at a time on a 2-core machine
public sealed class NetnsChaosTests
{
    private const long Seed = 20261202;

    [Theory]
    [InlineData(ChaosFault.PartitionPrimaryNet)]
    [InlineData(ChaosFault.PartitionCoordinatorMinority)]
    [InlineData(ChaosFault.OneWayPrimaryInbound)]
    [InlineData(ChaosFault.OneWayPrimaryOutbound)]
    [InlineData(ChaosFault.FlappingPrimaryLink)]
    [InlineData(ChaosFault.CutDuringResync)]
    public async Task A_run_of_each_network_fault_passes_the_invariant_checks(ChaosFault fault)
    {
        var plan = ChaosPlan.From(Seed, [fault]);
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-netns-chaos-{ChaosPlan.NameOf(fault)}-{Guid.NewGuid():N}");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        var result = await ChaosRunner.RunOneAsync(plan, dir, [], timeout.Token);
        Assert.True(result.Passed, $"seed {plan.Seed} {plan.Label}: {result.Failure}; {result.Summary}; logs in {dir}");
        Directory.Delete(dir, recursive: true);
    }
}
