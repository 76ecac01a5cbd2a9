using McActors.Node.Bench;
using McActors.Node.Bench.Nbd;

namespace McActors.Node.Tests;

[Collection(nameof(LocalClusterTests))] // one multi-process cluster at a time on a 2-core machine
public sealed class NbdBenchTests
{
    private static readonly string[] Measures = ["mib_s", "iops", "p50_us", "p99_us"];
    private static readonly string[] Targets = ["p1", "p2", "mcactors"];

    [Fact]
    public void Bench_nbd_runs_every_workload_against_the_three_targets_and_writes_the_named_rows()
    {
        var (rows, output) = BenchRun.Run(TimeSpan.FromMinutes(5), "bench", "nbd", "--seconds", "1", "--ramp", "0");
        foreach (var workload in FioWorkload.All)
        {
            foreach (var target in Targets)
            {
                foreach (var measure in Measures)
                    Assert.True(rows.ContainsKey($"{workload.Name}_{target}_{measure}"), $"row {workload.Name}_{target}_{measure} is missing:\n{output}");
                Assert.True(rows[$"{workload.Name}_{target}_mib_s"] > 0, $"{workload.Name} on {target} moved no data:\n{output}");
                Assert.True(rows[$"{workload.Name}_{target}_p99_us"] >= rows[$"{workload.Name}_{target}_p50_us"]);
            }
            var ratio = rows[$"{workload.Name}_mcactors_mib_s"] / rows[$"{workload.Name}_p1_mib_s"];
            Assert.InRange(rows[$"{workload.Name}_ratio_p1"], Math.Round(ratio, 2) - 0.01, Math.Round(ratio, 2) + 0.01);
            Assert.True(rows.ContainsKey($"{workload.Name}_ratio_p2"));
            // The coordinator's commit latency over McActors' run window: a second of 100 ms epochs commits some.
            var (commitP50, commitP99) = ($"{workload.Name}_mcactors_commit_p50_us", $"{workload.Name}_mcactors_commit_p99_us");
            Assert.True(rows.ContainsKey(commitP50) && rows.ContainsKey(commitP99), $"commit latency rows of {workload.Name} are missing:\n{output}");
            Assert.True(rows[commitP50] > 0 && rows[commitP50] <= rows[commitP99], $"{commitP50} {rows[commitP50]}, {commitP99} {rows[commitP99]}:\n{output}");
        }
        // Only the flushing workload reports the FLUSH latency, for every target.
        Assert.All(Targets, t => Assert.True(rows.ContainsKey($"W3_{t}_flush_p99_us")));
        Assert.DoesNotContain(rows.Keys, k => k.StartsWith("W2_", StringComparison.Ordinal) && k.Contains("flush", StringComparison.Ordinal));
        Assert.Contains("blockdev-mirror", output);
    }

    [Theory]
    [InlineData("--workload", "W9", "W9")]
    [InlineData("--seconds", "0", "--seconds")]
    [InlineData("--ramp", "-1", "--ramp")]
    public void A_bad_argument_is_refused_with_a_message_naming_it(string option, string value, string named)
    {
        var (exit, output, error) = NodeProcess.Run(TimeSpan.FromMinutes(1), "bench", "nbd", option, value);
        Assert.NotEqual(0, exit);
        Assert.Contains(named, output + error);
    }

    [Fact]
    public void A_missing_tool_is_refused_with_the_package_that_provides_it()
    {
        var e = Assert.Throws<BenchFailedException>(() => new BenchTool("mcactors-no-such-tool", "some-package").Locate());
        Assert.Contains("mcactors-no-such-tool", e.Message);
        Assert.Contains("apt-get install -y some-package", e.Message);
    }

    [Fact]
    public async Task The_report_of_a_real_fio_run_is_read_with_its_completion_and_flush_latencies()
    {
        // fio's null engine: the same JSON report as the NBD engine, without a server.
        var directory = Directory.CreateTempSubdirectory("mcactors-fio-");
        try
        {
            var report = Path.Combine(directory.FullName, "report.json");
            var (exit, output) = await ToolProcess.RunAsync(BenchTool.Fio,
                ["--name=W3", "--ioengine=null", "--rw=randwrite", "--bs=4k", "--size=16m", "--fsync=16", "--output-format=json", $"--output={report}"],
                TimeSpan.FromMinutes(1), CancellationToken.None);
            Assert.True(exit == 0, output);
            var w3 = FioWorkload.All.Single(w => w.Name == "W3");
            var result = Fio.Parse("fio: connected to NBD server\n" + await File.ReadAllTextAsync(report), w3);
            Assert.True(result.MibPerSecond > 0 && result.Iops > 0);
            Assert.True(result.P99Us >= result.P50Us);
            Assert.NotNull(result.FlushP99Us);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("", "no JSON")]
    [InlineData("{\"jobs\":[{\"error\":5}]}", "error 5")]
    [InlineData("{\"jobs\":[{\"error\":0,\"write\":{\"io_bytes\":0}}]}", "no I/O")]
    [InlineData("{\"jobs\":[]}", "unexpected JSON")]
    [InlineData("{\"jobs\":[{\"error\":0,\"write\":{\"io_bytes\":1", "unexpected JSON")]
    public void A_bad_fio_report_is_refused_naming_what_is_wrong(string report, string expected)
    {
        var e = Assert.Throws<BenchFailedException>(() => Fio.Parse(report, FioWorkload.All[0]));
        Assert.Contains(expected, e.Message);
    }
}
