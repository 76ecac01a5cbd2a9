using System.CommandLine;
using McActors.Hosting;
using McActors.Node.Hosting;

namespace McActors.Node.Cli;

/// <summary><c>mcactors node</c>: one node of a real deployment, in the foreground until SIGINT/SIGTERM.</summary>
internal static class NodeCommand
{
    public static Command Create()
    {
        var role = new Option<NodeKind>("--role") { Description = "replica (primary or secondary) or arbiter.", Required = true };
        role.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<NodeKind>() == NodeKind.Observer)
                r.AddError("--role must be replica or arbiter");
        });
        var name = new Option<string>("--name") { Description = "Node name, unique in the cluster (default: role-port)." };
        var host = new Option<string>("--host") { Description = "Address to bind and advertise.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Akka.Remote port.", Required = true };
        var seeds = new Option<string[]>("--seed") { Description = "Seed node host:port (repeat; include this node's own address on the first node).", AllowMultipleArgumentsPerToken = true };
        var dataDir = new Option<DirectoryInfo>("--data-dir") { Description = "Where this node keeps its volume, rollback logs and guest states.", Required = true };
        var journal = new Option<FileInfo>("--journal") { Description = "Coordinator journal (SQLite file shared by every node that can host the coordinator). Default: DATA_DIR/../coordinator.db." };
        var dataPort = new Option<int>("--data-port") { Description = "Data-plane (write stream) port of a replica. Default: --port + 1000." };
        var nbd = new Option<string>("--nbd") { Description = "Serve the volume over NBD at HOST:PORT while this replica is primary (the NBD client is the guest; without it, the synthetic guest runs)." };
        var set = new Option<string[]>("--set") { Description = "Override a HOCON key: --set mcactors.checkpoint.epoch-interval=50ms (repeat).", AllowMultipleArgumentsPerToken = true };
        var votes = new Option<bool>("--votes")
        {
            Description = "Whether an arbiter counts in the Split Brain Resolver's majority (replicas always do). Keep the voters odd: " +
                "true beside an even number of replicas, false beside an odd one.",
            DefaultValueFactory = _ => true,
        };
        foreach (var p in new[] { port, dataPort })
            p.Validators.Add(r =>
            {
                var v = r.GetValueOrDefault<int>();
                if (v is < 0 or > 65535)
                    r.AddError($"{r.Option.Name} {v} is not a TCP port");
            });

        var command = new Command("node", "Run one node of a McActors cluster in the foreground.")
        {
            role, name, host, port, seeds, dataDir, journal, dataPort, set, nbd, votes,
        };
        command.SetAction(async (parse, cancel) =>
        {
            var kind = parse.GetValue(role);
            var akkaPort = parse.GetValue(port);
            var dir = parse.GetValue(dataDir)!.FullName;
            var options = new NodeOptions(
                kind,
                parse.GetValue(name) ?? $"{kind.ToString().ToLowerInvariant()}-{akkaPort}",
                parse.GetValue(host)!,
                akkaPort,
                parse.GetValue(seeds) ?? [],
                dir,
                parse.GetValue(journal)?.FullName ?? Path.Combine(Path.GetDirectoryName(dir) ?? dir, "coordinator.db"),
                parse.GetValue(dataPort) is var dp and > 0 ? dp : akkaPort + 1000,
                parse.GetValue(set) ?? [],
                parse.GetValue(nbd),
                parse.GetValue(votes));
            try
            {
                return await NodeHost.RunAsync(options, parse.InvocationConfiguration.Output, cancel);
            }
            catch (Exception e) when (e is Akka.Configuration.ConfigurationException or ArgumentException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"node: {e.Message}");
                return 2;
            }
        });
        return command;
    }
}
