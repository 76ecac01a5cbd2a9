using System.Text.Json;

namespace McActors.Node.Tests;

public sealed class BenchCommandTests
{
    [Fact]
    public void Bench_storage_quick_prints_the_table_and_writes_the_named_json_rows()
    {
        var json = Path.Combine(Path.GetTempPath(), $"mcactors-bench-{Guid.NewGuid():N}.json");
        try
        {
            var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(3), "bench", "storage", "--quick", "--json", json);
            Assert.True(exit == 0, $"exit {exit}\n{output}\n{error}");
            Assert.Contains("cbw_write_ratio", output);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var rows = doc.RootElement.GetProperty("rows").EnumerateArray()
                .ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("value").GetDouble());
            foreach (var name in new[] { "cbw_write_ratio", "commit_ms_max", "rollback_mib_s_min", "peak_rss_mib" })
                Assert.True(rows.ContainsKey(name), $"row {name} is missing");
            Assert.InRange(rows["cbw_write_ratio"], 0.01, 10);
            Assert.True(rows["peak_rss_mib"] > 0);
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Fact]
    public void A_bad_argument_is_refused_with_a_message_naming_it()
    {
        var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(1), "bench", "storage", "--json", "/no/such/dir/x.json");
        Assert.NotEqual(0, exit);
        Assert.Contains("/no/such/dir", output + error);
    }
}
