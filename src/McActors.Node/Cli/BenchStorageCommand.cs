using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench storage [--json FILE] [--dir DIR] [--quick]</c>: see <see cref="StorageBench"/>.</summary>
internal static class BenchStorageCommand
{
    /// <summary>Exit code of a run whose own correctness checks failed.</summary>
    private const int FailedExitCode = 1;

    /// <summary>Exit code after Ctrl+C / SIGTERM, as a shell reports a process ended by SIGINT.</summary>
    private const int CancelledExitCode = 130;

    public static Command Create()
    {
        var json = BenchCommand.CreateJsonOption();
        var dir = new Option<DirectoryInfo>("--dir")
        {
            Description = "Existing directory to work in (a fresh subdirectory is made and removed); default: the system temp directory.",
            HelpName = "DIR",
        }.AcceptExistingOnly();
        var quick = new Option<bool>("--quick")
        {
            Description = $"Smoke test: every size divided by {StorageBench.QuickDivisor}, same rows.",
        };
        var command = new Command("storage",
            "Rollback store vs plain image: write throughput, commit time, rollback throughput, memory.")
        {
            json,
            dir,
            quick,
        };
        command.SetAction(async (parseResult, cancel) =>
        {
            var settings = new StorageBenchSettings(parseResult.GetValue(dir)?.FullName, parseResult.GetValue(quick));
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            BenchReport report;
            try
            {
                // Off the invoking thread, so that Ctrl+C can cancel it and its work directory is removed.
                report = await Task.Run(() => StorageBench.Run(settings, output, cancel), cancel);
            }
            catch (BenchFailedException e)
            {
                await error.WriteLineAsync($"bench storage failed: {e.Message}");
                return FailedExitCode;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                await error.WriteLineAsync("bench storage cancelled");
                return CancelledExitCode;
            }
            return BenchCommand.Finish(report, parseResult.GetValue(json), output);
        });
        return command;
    }
}
