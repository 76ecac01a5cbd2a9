using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Actor.Internal;
using Akka.Cluster;

namespace McActors.Testing;

/// <summary>
/// Kills nodes the way a crash does: no graceful cluster leave, so the others see the node
/// unreachable and the Split Brain Resolver downs it.
/// </summary>
public static partial class NodeKiller
{
    private const int SigKill = 9;

    /// <summary>
    /// Stops an in-process ActorSystem abruptly: it is aborted, which skips coordinated shutdown
    /// and with it the cluster leave. When the throttle adapter is applied, every link to the
    /// other members is blackholed first, so that not even a last message escapes (the others
    /// learn nothing, as after a power cut).
    /// </summary>
    public static async Task KillAsync(ActorSystem system)
    {
        if (FaultConfig.HasThrottleAdapter(system))
        {
            var self = Cluster.Get(system).SelfAddress;
            foreach (var member in Cluster.Get(system).State.Members.Where(m => m.Address != self))
                await NetworkFaults.BlackholeAsync(system, member.Address);
        }
        if (system is ActorSystemImpl impl)
            impl.Abort();
        else
            await system.Terminate();
        await system.WhenTerminated;
    }

    /// <summary>SIGKILL to an OS process: no handler runs, no socket is closed politely. False if there is no such process.</summary>
    public static bool KillProcess(int pid)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
            throw new PlatformNotSupportedException("SIGKILL needs a Unix");
        return Kill(pid, SigKill) == 0;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
