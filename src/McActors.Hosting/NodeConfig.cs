using Akka.Configuration;
using McActors.Checkpointing;
using McActors.Configuration;

namespace McActors.Hosting;

/// <summary>
/// A node's configuration: the hocon/ files, then what the command line says of this node
/// (address, roles, seeds, journal), then its <c>--set key=value</c> overrides, which win.
/// </summary>
public static class NodeConfig
{
    public static Config Build(NodeOptions options)
    {
        var seeds = string.Join(", ", options.Seeds.Select(s => $"\"{NodeOptions.SeedAddress(s)}\""));
        var roles = string.Join(", ", options.Roles.Select(r => $"\"{r}\""));
        var node = ConfigurationFactory.ParseString($$"""
            akka.remote.dot-netty.tcp.hostname = "{{options.Host}}"
            akka.remote.dot-netty.tcp.port = {{options.Port}}
            akka.cluster.roles = [{{roles}}]
            akka.cluster.seed-nodes = [{{seeds}}]
            """);
        var config = HoconFiles.WithOverrides(node.WithFallback(HoconFiles.Load()), options.Overrides);
        return CoordinatorJournal.Configure(config, options.JournalPath);
    }
}
