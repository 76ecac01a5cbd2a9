namespace McActors.Node.Tests;

public sealed class BenchCommandTests
{
    [Fact]
    public void Bench_storage_quick_prints_the_table_and_writes_the_named_json_rows()
    {
        var (rows, output) = BenchRun.Run(TimeSpan.FromMinutes(3), "bench", "storage", "--quick");
        Assert.Contains("cbw_write_ratio", output);
        foreach (var name in new[] { "cbw_write_ratio", "commit_ms_max", "rollback_mib_s_min", "peak_rss_mib" })
            Assert.True(rows.ContainsKey(name), $"row {name} is missing");
        Assert.InRange(rows["cbw_write_ratio"], 0.01, 10);
        Assert.True(rows["peak_rss_mib"] > 0);
    }

    [Fact]
    public void A_bad_argument_is_refused_with_a_message_naming_it()
    {
        var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(1), "bench", "storage", "--json", "/no/such/dir/x.json");
        Assert.NotEqual(0, exit);
        Assert.Contains("/no/such/dir", output + error);
    }
}
