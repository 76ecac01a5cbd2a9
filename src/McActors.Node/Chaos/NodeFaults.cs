using Akka.Actor;
using McActors.Node.LocalCluster;
using McActors.Testing;

namespace McActors.Node.Chaos;

/// <summary>
/// The faults chaos injects into node processes. Kill (SIGKILL) and partition (SIGSTOP for a
/// bounded time, then SIGCONT: the node is unreachable to everyone, its sockets stay open) need
/// nothing from the node. Store faults (disk error, slow disk) go through the fault toolkit's
/// <c>/user/fault-injection</c> actor (McActors.Testing), which a node runs only with
/// <c>mcactors.testing.fault-injection = on</c>: only the runs that draw a store fault turn it on,
/// so every other run tests the nodes exactly as deployed.
/// </summary>
public static class NodeFaults
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    public static bool StoreFaultsAvailable => true;

    /// <summary>The faults a run draws from by default: all but the network partitions, which need root (<c>chaos --netns</c> or <c>--fault</c> adds them).</summary>
    public static IReadOnlyList<ChaosFault> Available { get; } = [.. Enum.GetValues<ChaosFault>().Where(f => !NetworkFaults.Is(f))];

    public static bool IsStoreFault(ChaosFault fault) => fault is ChaosFault.DiskErrorSecondary or ChaosFault.SlowSecondary;

    /// <summary>Settings every node (and the observer) of a run needs for the fault it will get.</summary>
    public static IReadOnlyList<string> NodeOverrides(ChaosPlan plan) =>
        IsStoreFault(plan.Fault) ? [$"{FaultConfig.FaultInjectionKey} = on"] : [];

    /// <summary>
    /// Makes <paramref name="node"/>'s store disk fail (an I/O error after <paramref name="afterWrites"/>
    /// writes, or with <paramref name="failSync"/> its next fsync) or slow (<paramref name="delay"/> per write).
    /// </summary>
    public static Task<string> InjectStoreFaultAsync(ClusterObserver observer, LocalNodeProcess node, ChaosFault fault, int afterWrites, TimeSpan delay, bool failSync = false) =>
        AskAsync(observer, node, new InjectStoreFault(
            fault != ChaosFault.DiskErrorSecondary ? StoreFaultKind.Slow : failSync ? StoreFaultKind.SyncError : StoreFaultKind.IOError, afterWrites, delay));

    /// <summary>A healthy store disk again.</summary>
    public static Task<string> HealStoreAsync(ClusterObserver observer, LocalNodeProcess node) =>
        AskAsync(observer, node, new InjectStoreFault(StoreFaultKind.Heal, 0, TimeSpan.Zero));

    private static async Task<string> AskAsync(ClusterObserver observer, LocalNodeProcess node, InjectStoreFault fault)
    {
        var target = observer.System.ActorSelection(FaultConfig.FaultInjectionPath(node.Options.Host, node.Options.Port, McActors.Hosting.NodeOptions.SystemName));
        var reply = await target.Ask<object>(fault, AskTimeout);
        return reply switch
        {
            FaultInjected injected => injected.Description,
            Status.Failure failure => throw new InvalidOperationException($"{node.Options.Name} refused {fault}: {failure.Cause.Message}"),
            _ => throw new InvalidOperationException($"{node.Options.Name} answered {fault} with {reply}"),
        };
    }
}
