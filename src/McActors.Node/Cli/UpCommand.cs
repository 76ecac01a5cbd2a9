using System.CommandLine;
using McActors.Node.LocalCluster;

namespace McActors.Node.Cli;

/// <summary><c>mcactors up</c>: a local cluster of OS processes in the foreground; DATA/cluster.json says who is who.</summary>
internal static class UpCommand
{
    public static Command Create()
    {
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "Where the nodes keep their data, logs and cluster.json.", Required = true };
        var replicas = new Option<int>("--replicas") { Description = "Replica nodes (one becomes primary).", DefaultValueFactory = _ => 2 };
        replicas.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 8)
                r.AddError("--replicas must be between 1 and 8");
        });
        var epochMs = DemoCommand.CreateEpochOption();
        var set = new Option<string[]>("--set") { Description = "Override a HOCON key on every node (repeat).", AllowMultipleArgumentsPerToken = true };
        var guest = new Option<string>("--guest")
        {
            Description = "nbd: every replica serves the volume over NBD while primary (address in cluster.json's nbd), no guest runs; synthetic: the built-in workload.",
            DefaultValueFactory = _ => "nbd",
        };
        guest.AcceptOnlyFromAmong("nbd", "synthetic");
        var command = new Command("up", "Run a local cluster (replicas + an arbiter, one process each) until SIGINT/SIGTERM.")
        {
            dataDir, replicas, epochMs, set, guest,
        };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var overrides = DemoCommand.Overrides(parse.GetValue(epochMs), parse.GetValue(set));
            await using var cluster = LocalCluster.LocalCluster.Start(
                new LocalClusterOptions(parse.GetValue(dataDir)!.FullName, parse.GetValue(replicas), overrides, Nbd: parse.GetValue(guest) == "nbd"));
            try
            {
                var status = await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(60), cancel);
                cluster.UpdateTopology(status);
                await output.WriteLineAsync($"cluster up: primary {status.Primary}, secondaries {string.Join(", ", status.Secondaries)}; " +
                    $"topology in {Path.Combine(cluster.DataDirectory, TopologyFile.FileName)}; Ctrl+C stops it");
                if (cluster.Nodes.FirstOrDefault(n => n.Options.Name == status.Primary)?.Options.Nbd is { } nbd)
                    await output.WriteLineAsync($"the volume is served over NBD: nbd://{nbd} (qemu-io -f raw nbd://{nbd})");
                while (!cancel.IsCancellationRequested)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), cancel);
                    status = await TryStatus(cluster) ?? status;
                    cluster.UpdateTopology(status);
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
            }
            catch (TimeoutException e)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"up: {e.Message}");
                return 1;
            }
            await output.WriteLineAsync("stopping the cluster");
            return 0;
        });
        return command;
    }

    private static async Task<Protocol.CoordinatorStatus?> TryStatus(LocalCluster.LocalCluster cluster)
    {
        try
        {
            return await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(1));
        }
        catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
        {
            return null; // the coordinator may be moving; keep the last known roles
        }
    }
}
