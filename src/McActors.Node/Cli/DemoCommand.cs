using System.CommandLine;
using McActors.Node.Demo;

namespace McActors.Node.Cli;

/// <summary><c>mcactors demo</c>: the main job (see <see cref="DemoRunner"/>).</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var duration = new Option<int>("--duration") { Description = "Seconds the guest runs.", DefaultValueFactory = _ => 20 };
        duration.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 86400)
                r.AddError("--duration must be between 1 and 86400 seconds");
        });
        var epochMs = CreateEpochOption();
        var json = BenchCommand.CreateJsonOption();
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "Where the nodes keep their data (default: a new directory under the system temp directory, kept for inspection)." };
        var set = new Option<string[]>("--set") { Description = "Override a HOCON key on every node (repeat).", AllowMultipleArgumentsPerToken = true };
        var replicas = new Option<int>("--replicas") { Description = "Replica nodes (one primary, the others secondaries).", DefaultValueFactory = _ => DemoRunner.DefaultReplicas };
        replicas.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 2 or > 8)
                r.AddError("--replicas must be between 2 and 8 (a failover needs a secondary)");
        });
        var killAt = new Option<double?>("--kill-primary-at")
        {
            Description = "Seconds into the run at which the primary gets SIGKILL (default: a third of --duration; 0: no failover).",
            HelpName = "S",
        };
        var command = new Command("demo",
            "Run replicas and an arbiter with the synthetic guest, SIGKILL the primary mid-run (failover, re-protection), then verify the new primary and every in-sync secondary.")
        {
            duration, epochMs, json, dataDir, set, replicas, killAt,
        };
        command.Validators.Add(r =>
        {
            if (r.GetValue(killAt) is { } k && (k < 0 || k >= r.GetValue(duration)))
                r.AddError($"--kill-primary-at {k} must be 0 (no failover) or within --duration");
        });
        command.SetAction(async (parse, cancel) =>
        {
            var dir = parse.GetValue(dataDir)?.FullName
                ?? Path.Combine(Path.GetTempPath(), $"mcactors-demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            var seconds = parse.GetValue(duration);
            var kill = parse.GetValue(killAt) ?? seconds / 3.0;
            var options = new DemoOptions(dir, TimeSpan.FromSeconds(seconds),
                Overrides(parse.GetValue(epochMs), parse.GetValue(set)), parse.GetValue(json)?.FullName,
                parse.GetValue(replicas), kill > 0 ? TimeSpan.FromSeconds(kill) : null);
            try
            {
                return await DemoRunner.RunAsync(options, parse.InvocationConfiguration.Output, cancel);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException or Akka.Actor.AskTimeoutException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"demo failed: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    public static Option<int?> CreateEpochOption()
    {
        var option = new Option<int?>("--epoch-ms") { Description = "Epoch interval in milliseconds (default: hocon mcactors.checkpoint.epoch-interval)." };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is < 1 or > 60000)
                r.AddError("--epoch-ms must be between 1 and 60000");
        });
        return option;
    }

    public static IReadOnlyList<string> Overrides(int? epochMs, string[]? set) =>
        [.. epochMs is { } ms ? [$"mcactors.checkpoint.epoch-interval = {ms}ms"] : Array.Empty<string>(), .. set ?? []];
}
