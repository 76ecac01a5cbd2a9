using System.Diagnostics;
using McActors.Node.LocalCluster;

namespace McActors.Node.Bench.Nbd;

/// <summary>
/// An external tool of <c>bench nbd</c> (fio, qemu-nbd, qemu-storage-daemon, qemu-img): found on
/// PATH or refused with the Debian package that provides it; its output kept in a log file.
/// </summary>
internal sealed class ToolProcess : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);
    private readonly Process _process;
    private readonly StreamWriter _log;

    private ToolProcess(string tool, Process process, StreamWriter log, string logPath)
    {
        Tool = tool;
        _process = process;
        _log = log;
        LogPath = logPath;
    }

    public string Tool { get; }
    public string LogPath { get; }
    public bool HasExited => _process.HasExited;

    /// <summary>Starts a long-running tool (a server); its output goes to <paramref name="logPath"/>.</summary>
    public static ToolProcess Start(BenchTool tool, IEnumerable<string> args, string logPath)
    {
        var (process, log) = LoggedProcess.Start(tool.Locate(), args, logPath);
        return new ToolProcess(tool.Name, process, log, logPath);
    }

    /// <summary>Runs a tool to its end; a tool still running after <paramref name="timeout"/> is killed and reported.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(BenchTool tool, IEnumerable<string> args, TimeSpan timeout, CancellationToken cancel)
    {
        using var process = new Process { StartInfo = StartInfo(tool, args) };
        process.Start();
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync(cancel);
        var error = process.StandardError.ReadToEndAsync(cancel);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            cancel.ThrowIfCancellationRequested();
            throw new BenchFailedException($"{tool.Name} {string.Join(' ', process.StartInfo.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s");
        }
        return (process.ExitCode, await output + await error);
    }

    /// <summary>The last lines the tool printed, to explain a failure.</summary>
    public string Tail(int lines = 10)
    {
        _log.Flush();
        try
        {
            var all = File.ReadAllLines(LogPath);
            return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException e)
        {
            return $"(log {LogPath} unreadable: {e.Message})";
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGTERM first: qemu-nbd and qemu-storage-daemon flush and close their images on it.
            Signals.Send(_process.Id, Signals.SigTerm);
            using var grace = new CancellationTokenSource(StopGrace);
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        else
        {
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        LoggedProcess.CloseLog(_log);
    }

    private static ProcessStartInfo StartInfo(BenchTool tool, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(tool.Locate())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // the tools never read stdin; a closed one keeps them off the terminal
            UseShellExecute = false,
        };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        return start;
    }

}

/// <summary>A tool <c>bench nbd</c> runs, and the Debian package to install when it is missing.</summary>
internal sealed record BenchTool(string Name, string Package)
{
    public static readonly BenchTool Fio = new("fio", "fio");
    public static readonly BenchTool QemuNbd = new("qemu-nbd", "qemu-utils");
    public static readonly BenchTool QemuImg = new("qemu-img", "qemu-utils");
    public static readonly BenchTool StorageDaemon = new("qemu-storage-daemon", "qemu-system-common");

    public string Locate() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, Name)).FirstOrDefault(File.Exists)
        ?? throw new BenchFailedException($"{Name} is not installed: apt-get install -y {Package} (bench nbd runs it)");
}
