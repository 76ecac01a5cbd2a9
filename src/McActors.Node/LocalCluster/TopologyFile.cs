using System.Text.Json;
using System.Text.Json.Serialization;

namespace McActors.Node.LocalCluster;

/// <summary>One line of DATA/cluster.json; <see cref="Nbd"/> is host:port of a replica's NBD server (null: none).</summary>
public sealed record TopologyNode(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("pid")] int Pid,
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("akka_port")] int AkkaPort,
    [property: JsonPropertyName("data_dir")] string DataDir,
    [property: JsonPropertyName("nbd")] string? Nbd = null);

/// <summary>DATA/cluster.json: the local cluster's topology, rewritten atomically (temp file + rename) on every change.</summary>
public static class TopologyFile
{
    public const string FileName = "cluster.json";

    public static void Write(string dataDirectory, IReadOnlyList<TopologyNode> nodes)
    {
        var path = Path.Combine(dataDirectory, FileName);
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(new Topology(nodes), new JsonSerializerOptions { WriteIndented = true }));
        File.Move(temp, path, overwrite: true);
    }

    public static IReadOnlyList<TopologyNode> Read(string dataDirectory) =>
        JsonSerializer.Deserialize<Topology>(File.ReadAllBytes(Path.Combine(dataDirectory, FileName)))?.Nodes
        ?? throw new InvalidDataException($"{FileName} in {dataDirectory} is empty");

    private sealed record Topology([property: JsonPropertyName("nodes")] IReadOnlyList<TopologyNode> Nodes);
}
