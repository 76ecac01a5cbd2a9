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

    /// <summary>host:port → the Akka address of a seed node.</summary>
    public static string SeedAddress(string hostPort)
    {
        var colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostPort.AsSpan(colon + 1), out var port) || port is <= 0 or > 65535)
            throw new ArgumentException($"seed '{hostPort}' is not host:port");
        return $"akka.tcp://{SystemName}@{hostPort[..colon]}:{port}";
    }
}
