using Xunit.Abstractions;
using Xunit.Sdk;

namespace McActors.Tests.Guests;

/// <summary>
/// Seeds for the guest's randomised tests: fixed by MCACTORS_TEST_SEED to replay a failure, else
/// drawn anew each run; every failure names the seed that failed.
/// </summary>
internal static class GuestSeeds
{
    public const string Variable = "MCACTORS_TEST_SEED";

    public static void Run(int count, Action<int> sequence, ITestOutputHelper? output = null)
    {
        var text = Environment.GetEnvironmentVariable(Variable);
        var replay = int.TryParse(text, out var seed);
        if (!replay)
            seed = Random.Shared.Next();
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

/// <summary>A fresh directory under the system temp folder, deleted with everything in it.</summary>
internal sealed class GuestTempDirectory : IDisposable
{
    public GuestTempDirectory(string prefix = "mcactors-guest")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
