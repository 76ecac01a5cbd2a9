using System.CommandLine;
using McActors.DataPlane;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary>
/// <c>mcactors bench dataplane [--json FILE] [--mib N]</c>: the write stream over the data plane
/// against the same stream over Akka.Remote, side by side in one run, 64 KiB writes, loopback.
/// </summary>
internal static class BenchDataPlaneCommand
{
    private const int WriteSize = 64 << 10;
    private const int Rounds = 3; // median of three: the machine is noisy, the first round is JIT warm-up

    public static Command Create()
    {
        var json = BenchCommand.CreateJsonOption();
        var mib = new Option<int>("--mib") { Description = "MiB streamed per round over the data plane (Akka.Remote gets a quarter: it is much slower).", DefaultValueFactory = _ => 2048 };
        mib.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 16 or > 65536)
                r.AddError("--mib must be between 16 and 65536");
        });
        var command = new Command("dataplane", "Data-plane stream vs the same stream over Akka.Remote (64 KiB writes, loopback).") { json, mib };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var bytes = (long)parse.GetValue(mib) << 20;
            var options = DataPlaneOptions.Default;
            var dataPlane = new List<double>();
            var akka = new List<double>();
            for (var round = 0; round <= Rounds; round++)
            {
                var dp = (await DataPlaneBenchmark.RunAsync(bytes, WriteSize, options, cancel)).MegabytesPerSecond;
                var ar = await AkkaRemoteStream.MegabytesPerSecondAsync(bytes / 4, WriteSize, options.WindowBytes, cancel);
                await output.WriteLineAsync($"round {round}{(round == 0 ? " (warm-up)" : "")}: data plane {dp:F0} MB/s, Akka.Remote {ar:F0} MB/s");
                if (round == 0)
                    continue;
                dataPlane.Add(dp);
                akka.Add(ar);
            }
            var report = new BenchReport();
            var dpMedian = Median(dataPlane);
            var arMedian = Median(akka);
            report.Add("dataplane_mb_s", dpMedian, "MB/s", 0, BenchTarget.AtLeast(1000));
            report.Add("akka_remote_mb_s", arMedian, "MB/s", 0);
            report.Add("dataplane_vs_akka_remote_ratio", dpMedian / arMedian, "x", 1, BenchTarget.AtLeast(5));
            return BenchCommand.Finish(report, parse.GetValue(json), output);
        });
        return command;
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}
