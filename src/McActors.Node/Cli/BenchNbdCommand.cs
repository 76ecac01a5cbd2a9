using System.CommandLine;
using McActors.Node.Bench;
using McActors.Node.Bench.Nbd;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench nbd [--json FILE] [--seconds S] [--workload W]...</c>: see <see cref="NbdBench"/>.</summary>
internal static class BenchNbdCommand
{
    public static Command Create()
    {
        var json = BenchCommand.CreateJsonOption();
        var seconds = new Option<double>("--seconds") { Description = "Measured seconds of each fio run (12 runs: 4 workloads x 3 targets).", DefaultValueFactory = _ => 10 };
        seconds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is < 0.5 or > 600)
                r.AddError("--seconds must be between 0.5 and 600");
        });
        var ramp = new Option<double>("--ramp") { Description = "Unmeasured seconds at the start of each fio run.", DefaultValueFactory = _ => 1 };
        ramp.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is < 0 or > 60)
                r.AddError("--ramp must be between 0 and 60");
        });
        var workloads = new Option<string[]>("--workload")
        {
            Description = "Run only these workloads (repeat): " + string.Join("; ", FioWorkload.All.Select(w => $"{w.Name} {w.Description}")),
            HelpName = "W",
            AllowMultipleArgumentsPerToken = true,
        };
        workloads.AcceptOnlyFromAmong([.. FioWorkload.All.Select(w => w.Name)]);
        var keep = new Option<bool>("--keep") { Description = "Keep the work directory (images, logs, fio's JSON reports) and print its path." };
        var set = new Option<string[]>("--set") { Description = "KEY=VALUE setting for the McActors nodes (repeatable; for experiments).", HelpName = "KEY=VALUE" };
        var command = new Command("nbd",
            "fio --ioengine=nbd, same workloads side by side: P1 qemu-nbd on a raw file, P2 qemu-storage-daemon with a synchronous mirror, McActors primary + secondary.")
        {
            json, seconds, ramp, workloads, keep, set,
        };
        command.SetAction((parse, cancel) =>
        {
            var chosen = parse.GetValue(workloads) is { Length: > 0 } names ? [.. FioWorkload.All.Where(w => names.Contains(w.Name))] : FioWorkload.All;
            var settings = new NbdBenchSettings(TimeSpan.FromSeconds(parse.GetValue(seconds)), TimeSpan.FromSeconds(parse.GetValue(ramp)), chosen,
                parse.GetValue(keep), parse.GetValue(set) ?? []);
            return BenchCommand.RunAsync("nbd", parse, json, (output, token) => NbdBench.RunAsync(settings, output, token), cancel);
        });
        return command;
    }
}
