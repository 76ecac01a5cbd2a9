using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench replication [--json FILE] [--quick] [--keep]</c>: see <see cref="ReplicationBench"/>.</summary>
internal static class BenchReplicationCommand
{
    public static Command Create()
    {
        var json = BenchCommand.CreateJsonOption();
        var quick = new Option<bool>("--quick") { Description = "Smoke test: ~2-3 s per phase instead of ~10 s, same rows." };
        var keep = new Option<bool>("--keep") { Description = "Keep the work directory (the clusters' node.log files) and print its path." };
        var set = new Option<string[]>("--set")
        {
            Description = "KEY=VALUE setting for every node of both clusters, after the bench's own (repeatable; for experiments).",
            HelpName = "KEY=VALUE",
            AllowMultipleArgumentsPerToken = false,
        };
        var command = new Command("replication",
            "Local clusters: idle checkpoint rate and commit latency, loaded commit latency, guest throughput vs unreplicated, write amplification, secondary memory, data plane vs Akka.Remote.")
        {
            json,
            quick,
            keep,
            set,
        };
        command.SetAction((parse, cancel) =>
        {
            var settings = new ReplicationBenchSettings(parse.GetValue(quick), parse.GetValue(keep), parse.GetValue(set) ?? []);
            return BenchCommand.RunAsync("replication", parse, json, (output, token) => ReplicationBench.RunAsync(settings, output, token), cancel);
        });
        return command;
    }
}
