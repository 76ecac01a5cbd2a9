using McActors.Node.LocalCluster;

namespace McActors.Node.Chaos;

/// <summary>
/// The faults chaos injects into node processes. Kill (SIGKILL) and partition (SIGSTOP for a
/// bounded time, then SIGCONT: the node is unreachable to everyone, its sockets stay open) need
/// nothing from the node. Store faults (disk error, slow disk) go through the fault toolkit's
/// <c>/user/fault-injection</c> actor (McActors.Testing), which is not on main yet: until it is,
/// <see cref="StoreFaultsAvailable"/> is false and chaos does not choose those faults.
/// </summary>
public static class NodeFaults
{
    public static bool StoreFaultsAvailable => false;

    /// <summary>Settings every node of a chaos run needs for the faults it may get.</summary>
    public static IReadOnlyList<string> NodeOverrides => [];

    /// <summary>The faults a run may draw from.</summary>
    public static IReadOnlyList<ChaosFault> Available =>
        StoreFaultsAvailable
            ? Enum.GetValues<ChaosFault>()
            : [ChaosFault.KillPrimary, ChaosFault.KillSecondary, ChaosFault.PartitionPrimary, ChaosFault.PartitionSecondary];

    /// <summary>Makes <paramref name="node"/>'s store disk fail (I/O error after <paramref name="afterWrites"/> writes) or slow (<paramref name="delay"/> per write).</summary>
    public static Task<string> InjectStoreFaultAsync(ClusterObserver observer, LocalNodeProcess node, ChaosFault fault, int afterWrites, TimeSpan delay) =>
        throw new NotSupportedException($"{fault} needs the fault toolkit (McActors.Testing), not on main yet");
}
