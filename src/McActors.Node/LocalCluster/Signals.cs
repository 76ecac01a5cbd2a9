using System.Runtime.InteropServices;

namespace McActors.Node.LocalCluster;

/// <summary>Unix signals to child processes: .NET's Process.Kill only sends SIGKILL.</summary>
internal static partial class Signals
{
    public const int SigTerm = 15;
    public const int SigKill = 9;
    public const int SigStop = 19; // Linux numbering (x86-64 and arm64)
    public const int SigCont = 18;

    public static bool Send(int pid, int signal) => Kill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
