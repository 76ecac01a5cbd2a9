using Xunit.Abstractions;
using Xunit.Sdk;

namespace McActors.TestSupport;

/// <summary>
/// Seeds for randomised tests: fixed by MCACTORS_TEST_SEED to replay a failure, else drawn anew
/// each run. Every failure names the seed of the sequence that failed.
/// </summary>
public static class Seeds
{
    public const string Variable = "MCACTORS_TEST_SEED";

    /// <summary>The base seed for this run, and whether it was fixed from the environment.</summary>
    public static (int Seed, bool Replay) Base()
    {
        var text = Environment.GetEnvironmentVariable(Variable);
        return int.TryParse(text, out var fixedSeed) ? (fixedSeed, true) : (Random.Shared.Next(), false);
    }

    /// <summary>Runs <paramref name="count"/> sequences (one when replaying a seed), wrapping a failure with its seed.</summary>
    public static void Run(int count, Action<int> sequence, ITestOutputHelper? output = null)
    {
        var (seed, replay) = Base();
        output?.WriteLine($"base seed {seed}{(replay ? " (replay)" : "")}, {count} sequences");
        for (var i = 0; i < (replay ? 1 : count); i++)
        {
            var s = unchecked(seed + i * 7919);
            try
            {
                sequence(s);
            }
            catch (Exception e)
            {
                throw new XunitException($"sequence with seed {s} failed (replay: {Variable}={s} dotnet test): {e}");
            }
        }
    }
}
