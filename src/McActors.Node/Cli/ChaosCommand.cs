using System.CommandLine;
using McActors.Node.Chaos;
using McActors.Node.LocalCluster;

namespace McActors.Node.Cli;

/// <summary><c>mcactors chaos --runs N --seed S</c>: see <see cref="ChaosRunner"/>.</summary>
internal static class ChaosCommand
{
    public static Command Create()
    {
        var runs = new Option<int>("--runs") { Description = "Runs, each one fault in a fresh local cluster.", DefaultValueFactory = _ => 10 };
        runs.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 100000)
                r.AddError("--runs must be between 1 and 100000");
        });
        var seed = new Option<long?>("--seed") { Description = "Seed of the whole series (default: random, printed). Each run prints its own seed; --seed <it> --runs 1 replays that run." };
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "Where runs keep their nodes' data and logs (failed runs' are kept; default: a new directory under the system temp directory)." };
        var set = new Option<string[]>("--set") { Description = "Override a HOCON key on every node of every run (repeat).", AllowMultipleArgumentsPerToken = true };
        var names = Enum.GetValues<ChaosFault>().ToDictionary(ChaosPlan.NameOf);
        var netns = new Option<bool>("--netns")
        {
            Description = $"Draw from the network partitions too ({string.Join(", ", NetworkFaults.All.Select(ChaosPlan.NameOf))}): " +
                "their runs put every node in a network namespace of its own and cut links with iptables (root; iproute2, iptables).",
        };
        var faults = new Option<string[]>("--fault")
        {
            Description = $"Draw only from these faults (repeat; default all but the network ones, see --netns; a seed replays with the same list): {string.Join(", ", names.Keys)}.",
            HelpName = "FAULT",
            AllowMultipleArgumentsPerToken = true,
        };
        faults.AcceptOnlyFromAmong([.. names.Keys]);
        var client = new Option<string>("--client")
        {
            Description = "What writes to the volume: synthetic (the built-in guest, checkpointed with the disk) or nbd (a real NBD client on 1-4 " +
                          "connections that reconnects to the new primary and resends, its history checked for lost flushed writes and invented data).",
            DefaultValueFactory = _ => "synthetic",
        };
        client.AcceptOnlyFromAmong("synthetic", "nbd");
        var command = new Command("chaos",
            "Seeded runs of one fault each (kill -9 or partition of the primary or a secondary, store faults, kill -9 of the arbiter) in fresh local clusters, checking the DESIGN.md invariants after each.")
        {
            runs, seed, dataDir, set, faults, client, netns,
        };
        command.SetAction(async (parse, cancel) =>
        {
            var s = parse.GetValue(seed) ?? Random.Shared.NextInt64(1, long.MaxValue);
            var dir = parse.GetValue(dataDir)?.FullName ?? Path.Combine(Path.GetTempPath(), $"mcactors-chaos-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            var chosen = (parse.GetValue(faults) ?? []).Distinct().Select(n => names[n]).ToList();
            if (parse.GetValue(netns))
                chosen = [.. (chosen.Count > 0 ? chosen : NodeFaults.Available).Concat(NetworkFaults.All).Distinct()];
            if (chosen.Any(NetworkFaults.Is) && NetworkNamespaces.Unavailable() is { } why)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"chaos: {why}: the network faults ({string.Join(", ", chosen.Where(NetworkFaults.Is).Select(ChaosPlan.NameOf))}) cannot run here");
                return 2;
            }
            var writer = parse.GetValue(client) == "nbd" ? ChaosClient.Nbd : ChaosClient.Synthetic;
            return await ChaosRunner.RunAsync(new ChaosOptions(parse.GetValue(runs), s, dir, parse.GetValue(set) ?? [], chosen, writer),
                parse.InvocationConfiguration.Output, cancel);
        });
        return command;
    }
}
