using Microsoft.Extensions.Configuration;

namespace McActors.Hosting;

/// <summary>What a node is for: a replica (primary or secondary), an arbiter (a vote for the Split Brain Resolver), or an observer (the CLI watching a cluster).</summary>
public enum NodeKind
{
    Replica,
    Arbiter,
    Observer,
}

/// <summary>
/// One node's identity and places, from the command line. <see cref="Nbd"/>: host:port where a
/// replica serves the volume over NBD while primary. <see cref="Votes"/>: an arbiter counts in the
/// Split Brain Resolver's majority (replicas always do); an arbiter beside an odd number of
/// replicas should not, or the voters are even and a half-and-half partition is a tie.
/// </summary>
public sealed record NodeOptions(
    NodeKind Kind,
    string Name,
    string Host,
    int Port,
    IReadOnlyList<string> Seeds,
    string DataDirectory,
    string JournalPath,
    int DataPort,
    IReadOnlyList<string> Overrides,
    string? Nbd = null,
    bool Votes = true)
{
    public const string SystemName = "mcactors";

    /// <summary>The Split Brain Resolver's keep-majority counts only nodes with this role (hocon/cluster.conf).</summary>
    public const string VoterRole = "voter";

    /// <summary>Cluster roles: every non-observer node may host the coordinator singleton; replicas and voting arbiters vote.</summary>
    public IReadOnlyList<string> Roles => Kind switch
    {
        NodeKind.Replica => ["replica", "coordinator", VoterRole],
        NodeKind.Arbiter when Votes => ["arbiter", "coordinator", VoterRole],
        NodeKind.Arbiter => ["arbiter", "coordinator"],
        _ => ["observer"],
    };

    /// <summary>
    /// A node from configuration (e.g. <c>--McActors:Kind=Replica --McActors:Port=4053</c> on a
    /// Generic Host's command line, or a section of appsettings.json): <c>Kind</c> (Replica or
    /// Arbiter), <c>Port</c>, <c>DataDirectory</c> required; <c>Name</c> (default kind-port),
    /// <c>Host</c> (127.0.0.1), <c>Seeds</c> (host:port, comma-separated; default this node),
    /// <c>Journal</c> (DataDirectory/../coordinator.db), <c>DataPort</c> (Port + 1000), <c>Nbd</c>,
    /// <c>Votes</c> (true), <c>Set</c> (HOCON overrides, ';'-separated).
    /// </summary>
    public static NodeOptions From(IConfiguration section)
    {
        string Required(string key) => section[key] is { Length: > 0 } value
            ? value
            : throw new ArgumentException($"configuration key {Key(key)} is missing");
        string Key(string key) => section is IConfigurationSection s ? $"{s.Path}:{key}" : key;
        int Port(string key, string value) => int.TryParse(value, out var port) && port is > 0 and <= 65535
            ? port
            : throw new ArgumentException($"configuration key {Key(key)} = '{value}' is not a TCP port");

        var kind = Enum.TryParse<NodeKind>(Required("Kind"), ignoreCase: true, out var k) && k != NodeKind.Observer
            ? k
            : throw new ArgumentException($"configuration key {Key("Kind")} = '{section["Kind"]}' is not Replica or Arbiter");
        var port = Port("Port", Required("Port"));
        var host = section["Host"] ?? "127.0.0.1";
        var dir = Path.GetFullPath(Required("DataDirectory"));
        return new NodeOptions(
            kind,
            section["Name"] ?? $"{kind.ToString().ToLowerInvariant()}-{port}",
            host,
            port,
            section["Seeds"]?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [$"{host}:{port}"],
            dir,
            section["Journal"] ?? Path.Combine(Path.GetDirectoryName(dir) ?? dir, "coordinator.db"),
            section["DataPort"] is { } dataPort ? Port("DataPort", dataPort) : port + 1000,
            section["Set"]?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [],
            section["Nbd"],
            !bool.TryParse(section["Votes"], out var votes) || votes);
    }

    /// <summary>host:port → the Akka address of a seed node.</summary>
    public static string SeedAddress(string hostPort)
    {
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostPort.AsSpan(colon + 1), out var port) || port is <= 0 or > 65535)
            throw new ArgumentException($"seed '{hostPort}' is not host:port");
        return $"akka.tcp://{SystemName}@{hostPort[..colon]}:{port}";
    }
}
