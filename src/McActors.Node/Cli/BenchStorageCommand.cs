using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench storage [--json FILE] [--dir DIR] [--quick]</c>: see <see cref="StorageBench"/>.</summary>
internal static class BenchStorageCommand
{
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
        command.SetAction((parse, cancel) =>
        {
            var settings = new StorageBenchSettings(parse.GetValue(dir)?.FullName, parse.GetValue(quick));
            // Off the invoking thread, so that Ctrl+C can cancel it and its work directory is removed.
            return BenchCommand.RunAsync("storage", parse, json, (output, token) => Task.Run(() => StorageBench.Run(settings, output, token), token), cancel);
        });
        return command;
    }
}
