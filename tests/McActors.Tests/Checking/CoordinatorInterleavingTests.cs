using System.Diagnostics;
using Xunit.Abstractions;

namespace McActors.Tests.Checking;

/// <summary>
/// Every order of the coordinator's decisions in a small world (<see cref="ReplicationModel"/>),
/// exhaustively, then seeded random walks in a larger one; and the same explorer against
/// deliberately broken variants of the decisions, so that its power to find each race is itself
/// tested.
/// </summary>
public sealed class CoordinatorInterleavingTests(ITestOutputHelper output)
{
    private ExplorationResult Explore(ModelScope scope, Action<ReplicationModel>? visit = null)
    {
        var clock = Stopwatch.StartNew();
        var result = StateExplorer.Exhaustive(new ReplicationModel(scope), maxStates: 200_000, visit: visit);
        output.WriteLine($"{scope}: {result} ({clock.ElapsedMilliseconds} ms)");
        return result;
    }

    /// <summary>
    /// The exhaustive scopes: three epochs, two in flight, the faults in pairs (every fault at
    /// once is left to the random walks: its state space is past a CI budget).
    /// </summary>
    public static TheoryData<string, ModelScope> SmallScopes => new()
    {
        { "resync + coordinator recovery", new ModelScope(SecondaryCrashes: 0, PrimaryLosses: 0, Deadlines: 0) },
        { "resync + primary loss", new ModelScope(SecondaryCrashes: 0, CoordinatorRecoveries: 0, Deadlines: 0) },
        { "resync + secondary crash + deadline", new ModelScope(PrimaryLosses: 0, CoordinatorRecoveries: 0) },
        { "primary loss + coordinator recovery + deadline", new ModelScope(Resyncs: 0, SecondaryCrashes: 0) },
    };

    [Theory]
    [MemberData(nameof(SmallScopes))]
    public void Every_interleaving_in_a_small_scope_keeps_the_invariants(string name, ModelScope scope)
    {
        var (failovers, joined, allCommitted) = (0, 0, 0);
        var result = Explore(scope, visit: m =>
        {
            failovers += m.Generation > 1 ? 1 : 0;
            joined += m.JoinedSecondaries > 0 ? 1 : 0;
            allCommitted += m.LastCommitted == scope.Epochs ? 1 : 0;
        });
        output.WriteLine($"{name}: states with a failover {failovers}, with a joined secondary {joined}, with every epoch committed {allCommitted}");

        Assert.True(result.Violation is null, result.ToString());
        Assert.True(result.Complete, result.ToString());
        // The world was really explored: every epoch committed, and what the scope allows happened.
        Assert.True(allCommitted > 0, $"{name}: no state has every epoch committed");
        Assert.True(scope.PrimaryLosses == 0 || failovers > 0, $"{name}: no failover was explored");
        Assert.True(scope.Resyncs == 0 || joined > 0, $"{name}: no join was explored");
    }

    /// <summary>Every fault at once, more epochs and in flight, each fault more than once: seeded random paths.</summary>
    [Fact]
    public void Seeded_random_walks_in_a_larger_world_keep_the_invariants()
    {
        var seed = Environment.GetEnvironmentVariable("MCACTORS_CHECK_SEED") is { } s ? int.Parse(s) : 20261202;
        var scope = new ModelScope(Epochs: 6, MaxInFlight: 3, Resyncs: 2, SecondaryCrashes: 2, PrimaryLosses: 2, CoordinatorRecoveries: 2, Deadlines: 3);
        var clock = Stopwatch.StartNew();
        var result = StateExplorer.RandomWalks(new ReplicationModel(scope), seed, walks: 3000, maxSteps: 200);
        output.WriteLine($"{scope}: {result} ({clock.ElapsedMilliseconds} ms; MCACTORS_CHECK_SEED={seed} replays it)");

        Assert.True(result.Violation is null, $"MCACTORS_CHECK_SEED={seed}: {result}");
        Assert.True(result.States > 5_000, result.ToString());
    }

    [Fact]
    public void With_the_old_join_the_explorer_finds_a_commit_counting_a_secondary_that_never_prepared_it()
    {
        var result = Explore(new ModelScope(Flaw: ModelFlaw.JoinCountsForOpenCheckpoints));

        Assert.NotNull(result.Violation);
        output.WriteLine(result.ToString());
        Assert.Contains("committed as prepared by j, whose store does not hold it", result.Violation);
        Assert.Contains(result.Trace, step => step.Contains("ResyncCompleted"));
    }

    [Fact]
    public void With_Commit_saying_the_current_set_size_the_explorer_finds_a_Commit_that_claims_too_many_secondaries()
    {
        var result = Explore(new ModelScope(Flaw: ModelFlaw.CommitSaysCurrentSetSize));

        Assert.NotNull(result.Violation);
        output.WriteLine(result.ToString());
        Assert.Matches("Commit\\(\\d+\\) to \\w+ says \\d+ secondaries; \\d+ prepared it", result.Violation);
    }

    [Fact]
    public void With_an_unguarded_failover_target_the_explorer_finds_a_promotion_to_a_replica_that_cannot_roll_back()
    {
        var result = Explore(new ModelScope(Flaw: ModelFlaw.UnguardedFailoverTarget));

        Assert.NotNull(result.Violation);
        output.WriteLine(result.ToString());
        Assert.Contains("failover target j cannot roll back to the last committed checkpoint", result.Violation);
    }
}
