using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary><c>mcactors bench ...</c>: measurements on this machine, one subcommand per part of the node.</summary>
internal static class BenchCommand
{
    public static Command Create() => new("bench", "Measure a part of the node on this machine; prints a table, optionally writes JSON.")
    {
        BenchStorageCommand.Create(),
        BenchDataPlaneCommand.Create(),
        BenchReplicationCommand.Create(),
        BenchFailoverCommand.Create(),
        BenchNbdCommand.Create(),
    };

    /// <summary>
    /// <c>--json FILE</c>, shared by every bench subcommand. The file's directory must exist: checked
    /// while parsing, so a typo fails at once rather than after a long run.
    /// </summary>
    public static Option<FileInfo> CreateJsonOption()
    {
        var option = new Option<FileInfo>("--json")
        {
            Description = "Also write the rows as JSON {\"rows\":[{\"name\",\"value\",\"unit\"}]} to FILE (replaced if it exists).",
            HelpName = "FILE",
        };
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<FileInfo?>() is not { } file)
                return;
            if (Directory.Exists(file.FullName))
                result.AddError($"--json {file}: is a directory, expected a file path");
            else if (file.Directory is { Exists: false } parent)
                result.AddError($"--json {file}: directory {parent.FullName} does not exist");
        });
        return option;
    }

    private const int FailedExitCode = 1;
    private const int CancelledExitCode = 130;

    /// <summary>
    /// Runs a bench subcommand's measurement, then <see cref="Finish"/>. A bench that cannot
    /// measure (a tool missing, a cluster that did not start, a timeout) says why and exits 1;
    /// Ctrl+C exits 130 (each bench removes its work directory on the way out).
    /// </summary>
    public static async Task<int> RunAsync(string name, ParseResult parse, Option<FileInfo> json,
        Func<TextWriter, CancellationToken, Task<BenchReport>> measure, CancellationToken cancel)
    {
        var output = parse.InvocationConfiguration.Output;
        var error = parse.InvocationConfiguration.Error;
        BenchReport report;
        try
        {
            report = await measure(output, cancel);
        }
        catch (Exception e) when (e is BenchFailedException or TimeoutException or InvalidOperationException)
        {
            await error.WriteLineAsync($"bench {name} failed: {e.Message}");
            return FailedExitCode;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await error.WriteLineAsync($"bench {name} cancelled");
            return CancelledExitCode;
        }
        return Finish(report, parse.GetValue(json), output);
    }

    /// <summary>The common tail of every bench subcommand: print the table, write the JSON. Missed targets do not fail the command.</summary>
    public static int Finish(BenchReport report, FileInfo? json, TextWriter output)
    {
        output.WriteLine();
        report.PrintTable(output);
        if (json is not null)
        {
            report.WriteJson(json.FullName);
            output.WriteLine($"wrote {json.FullName}");
        }
        return 0;
    }
}
