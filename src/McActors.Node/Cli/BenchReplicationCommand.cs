using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench replication [--json FILE] [--quick] [--keep]</c>: see <see cref="ReplicationBench"/>.</summary>
internal static class BenchReplicationCommand
{
    /// <summary>Exit code of a run whose cluster did not do what was measured (a node died, roles changed).</summary>
    private const int FailedExitCode = 1;

    /// <summary>Exit code after Ctrl+C / SIGTERM, as a shell reports a process ended by SIGINT.</summary>
    private const int CancelledExitCode = 130;

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
        command.SetAction(async (parseResult, cancel) =>
        {
            var settings = new ReplicationBenchSettings(parseResult.GetValue(quick), parseResult.GetValue(keep), parseResult.GetValue(set) ?? []);
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            BenchReport report;
            try
            {
                report = await ReplicationBench.RunAsync(settings, output, cancel);
            }
            catch (BenchFailedException e)
            {
                await error.WriteLineAsync($"bench replication failed: {e.Message}");
                return FailedExitCode;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                await error.WriteLineAsync("bench replication cancelled");
                return CancelledExitCode;
            }
            return BenchCommand.Finish(report, parseResult.GetValue(json), output);
        });
        return command;
    }
}
