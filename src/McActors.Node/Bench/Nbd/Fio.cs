using System.Globalization;
using System.Text.Json;

namespace McActors.Node.Bench.Nbd;

/// <summary>One fio job of <c>bench nbd</c>, run the same way against every target.</summary>
/// <param name="FlushEvery">fio's <c>--fsync=N</c>: an NBD FLUSH after every N writes (null: none).</param>
public sealed record FioWorkload(string Name, string Description, string ReadWrite, string BlockSize, int IoDepth, int? FlushEvery = null)
{
    public static readonly IReadOnlyList<FioWorkload> All =
    [
        new("W1", "sequential write 64k qd16", "write", "64k", 16),
        new("W2", "random write 4k qd16", "randwrite", "4k", 16),
        new("W3", "random write 4k qd1, flush every 16", "randwrite", "4k", 1, FlushEvery: 16),
        new("W4", "random read 4k qd16", "randread", "4k", 16),
    ];

    public bool Reads => ReadWrite.Contains("read", StringComparison.Ordinal);
}

/// <summary>What fio measured for one workload on one target; latencies are completion latencies.</summary>
/// <param name="FlushP99Us">The 99th percentile of the FLUSH latency, for workloads that flush.</param>
public sealed record FioResult(double MibPerSecond, double Iops, double P50Us, double P99Us, double? FlushP99Us);

/// <summary>Runs fio's NBD engine (libnbd) against an <c>nbd://</c> URI and reads its JSON report.</summary>
public static class Fio
{
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(60);

    public static async Task<FioResult> RunAsync(FioWorkload workload, string uri, long sizeBytes, TimeSpan runtime, TimeSpan ramp,
        string reportPath, CancellationToken cancel)
    {
        List<string> args =
        [
            $"--name={workload.Name}", "--ioengine=nbd", $"--uri={uri}",
            $"--rw={workload.ReadWrite}", $"--bs={workload.BlockSize}", $"--iodepth={workload.IoDepth}",
            $"--size={sizeBytes}", "--time_based", $"--runtime={Seconds(runtime)}", $"--ramp_time={Seconds(ramp)}",
            // The report goes to a file: the NBD engine prints "connected to NBD server" on stdout.
            "--output-format=json", $"--output={reportPath}",
        ];
        if (workload.FlushEvery is { } every)
            args.Add($"--fsync={every}");
        var (exit, output) = await ToolProcess.RunAsync(BenchTool.Fio, args, runtime + ramp + Slack, cancel);
        if (exit != 0)
            throw new BenchFailedException($"fio {workload.Name} against {uri} exited {exit}: {output.Trim()}");
        return Parse(await File.ReadAllTextAsync(reportPath, cancel), workload);
    }

    /// <summary>Reads fio's JSON report (text before the first brace, which some engines print, is skipped).</summary>
    public static FioResult Parse(string report, FioWorkload workload)
    {
        var start = report.IndexOf('{', StringComparison.Ordinal);
        if (start < 0)
            throw new BenchFailedException($"fio {workload.Name}: no JSON in its report: {Shorten(report)}");
        try
        {
            using var document = JsonDocument.Parse(report.AsMemory(start));
            var job = document.RootElement.GetProperty("jobs")[0];
            if (job.GetProperty("error").GetInt32() is var error and not 0)
                throw new BenchFailedException($"fio {workload.Name} reported error {error}");
            var io = job.GetProperty(workload.Reads ? "read" : "write");
            if (io.GetProperty("io_bytes").GetInt64() == 0)
                throw new BenchFailedException($"fio {workload.Name} completed no I/O");
            var clat = io.GetProperty("clat_ns").GetProperty("percentile");
            double? flushP99 = null;
            if (workload.FlushEvery is not null && job.TryGetProperty("sync", out var sync) && sync.GetProperty("total_ios").GetInt64() > 0)
                flushP99 = Microseconds(sync.GetProperty("lat_ns").GetProperty("percentile"), "99.000000");
            return new FioResult(
                io.GetProperty("bw_bytes").GetDouble() / (1 << 20),
                io.GetProperty("iops").GetDouble(),
                Microseconds(clat, "50.000000"),
                Microseconds(clat, "99.000000"),
                flushP99);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new BenchFailedException($"fio {workload.Name}: unexpected JSON report ({e.Message}): {Shorten(report)}");
        }
    }

    private static double Microseconds(JsonElement percentiles, string which) => percentiles.GetProperty(which).GetDouble() / 1000;

    private static string Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 3).ToString(CultureInfo.InvariantCulture) + "s";

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "...";
}
