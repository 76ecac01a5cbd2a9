using System.Text.Json;

namespace McActors.Node.Tests;

/// <summary>Runs a <c>bench</c> subcommand through the real executable and reads back its JSON rows.</summary>
internal static class BenchRun
{
    public static (IReadOnlyDictionary<string, double> Rows, string Output) Run(TimeSpan timeout, params string[] args)
    {
        var json = Path.Combine(Path.GetTempPath(), $"mcactors-bench-{Guid.NewGuid():N}.json");
        try
        {
            var (exit, output, error) = NodeProcess.Run(timeout, [.. args, "--json", json]);
            Assert.True(exit == 0, $"exit {exit}\n{output}\n{error}");
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var rows = doc.RootElement.GetProperty("rows").EnumerateArray()
                .ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("value").GetDouble());
            return (rows, output);
        }
        finally
        {
            File.Delete(json);
        }
    }
}
