using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench failover [--json FILE] [--runs N]</c>: see <see cref="FailoverBench"/>.</summary>
internal static class BenchFailoverCommand
{
    public static Command Create()
    {
        var json = BenchCommand.CreateJsonOption();
        var runs = new Option<int>("--runs") { Description = "Kills, each in a fresh local cluster; rows are medians.", DefaultValueFactory = _ => 3 };
        runs.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 100)
                r.AddError("--runs must be between 1 and 100");
        });
        var replicas = new Option<int>("--replicas") { Description = "Replicas per cluster (2: the set has room to re-protect the killed node).", DefaultValueFactory = _ => 2 };
        replicas.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 2 or > 8)
                r.AddError("--replicas must be between 2 and 8");
        });
        var keep = new Option<bool>("--keep") { Description = "Keep the work directory (the clusters' node.log files) and print its path." };
        var set = new Option<string[]>("--set") { Description = "KEY=VALUE setting for every node (repeatable; for experiments).", HelpName = "KEY=VALUE" };
        var command = new Command("failover",
            "Local clusters: SIGKILL of the primary → new primary accepting writes (detect, down, rollback, resume), rollback of 64 MiB, re-protection MiB/s.")
        {
            json, runs, replicas, keep, set,
        };
        command.SetAction((parse, cancel) =>
        {
            var settings = new FailoverBenchSettings(parse.GetValue(runs), parse.GetValue(replicas), parse.GetValue(keep), parse.GetValue(set) ?? []);
            return BenchCommand.RunAsync("failover", parse, json, (output, token) => FailoverBench.RunAsync(settings, output, token), cancel);
        });
        return command;
    }
}
