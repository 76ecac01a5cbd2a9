using McActors.DataPlane;

namespace McActors.Node.Bench;

/// <summary>Medians of the data-plane stream and the same stream over Akka.Remote, measured side by side.</summary>
public readonly record struct TransportComparison(double DataPlaneMegabytesPerSecond, double AkkaRemoteMegabytesPerSecond)
{
    public double Ratio => DataPlaneMegabytesPerSecond / AkkaRemoteMegabytesPerSecond;

    /// <summary>The three rows every bench reports for it, with the targets of the replication issue.</summary>
    public void AddTo(BenchReport report)
    {
        report.Add("dataplane_mb_s", DataPlaneMegabytesPerSecond, "MB/s", 0, BenchTarget.AtLeast(1000));
        report.Add("akka_remote_mb_s", AkkaRemoteMegabytesPerSecond, "MB/s", 0);
        report.Add("dataplane_vs_akka_remote_ratio", Ratio, "x", 1, BenchTarget.AtLeast(5));
    }
}

/// <summary>
/// The measurement behind <c>bench dataplane</c>, reusable by other benches: one untimed round, then
/// <c>rounds</c> timed ones, each the data plane then Akka.Remote (a quarter of the bytes: it is much
/// slower) with the same write size and window, loopback; the medians are reported.
/// </summary>
public static class ReplicationTransport
{
    public const int WriteSize = 64 << 10;
    public const int DefaultRounds = 3; // median of three: the machine is noisy, the first round is JIT warm-up

    public static async Task<TransportComparison> CompareAsync(long bytes, int rounds, TextWriter output, CancellationToken cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        var options = DataPlaneOptions.Default;
        var dataPlane = new List<double>();
        var akka = new List<double>();
        for (var round = 0; round <= rounds; round++)
        {
            var dp = (await DataPlaneBenchmark.RunAsync(bytes, WriteSize, options, cancel)).MegabytesPerSecond;
            var ar = await AkkaRemoteStream.MegabytesPerSecondAsync(bytes / 4, WriteSize, options.WindowBytes, cancel);
            await output.WriteLineAsync($"  round {round}{(round == 0 ? " (warm-up)" : "")}: data plane {dp:F0} MB/s, Akka.Remote {ar:F0} MB/s");
            if (round == 0)
                continue;
            dataPlane.Add(dp);
            akka.Add(ar);
        }
        return new TransportComparison(Median(dataPlane), Median(akka));
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}
