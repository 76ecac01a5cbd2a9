using System.Diagnostics;
using McActors.Hosting;
using McActors.Node.Hosting;

namespace McActors.Node.LocalCluster;

/// <summary>One node of a local cluster: an OS process running <c>mcactors node</c>, its output in DATA/NAME/node.log.</summary>
public sealed class LocalNodeProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;

    private LocalNodeProcess(NodeOptions options, Process process, StreamWriter log)
    {
        Options = options;
        _process = process;
        _log = log;
    }

    public NodeOptions Options { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code once exited (3: the cluster downed the node), else null.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>True between <see cref="Pause"/> and <see cref="Resume"/>.</summary>
    public bool IsPaused { get; private set; }
    public string LogPath => Path.Combine(Options.DataDirectory, "node.log");

    /// <summary>Starts the node; with <paramref name="network"/>, inside the namespace named after it.</summary>
    public static LocalNodeProcess Start(NodeOptions options, NetworkNamespaces? network = null)
    {
        Directory.CreateDirectory(options.DataDirectory);
        var (file, prefix) = SelfCommand();
        IEnumerable<string> args = prefix.Concat(Arguments(options));
        if (network is not null)
            (file, args) = network.Command(options.Name, file, args);
        var (process, log) = LoggedProcess.Start(file, args, Path.Combine(options.DataDirectory, "node.log"));
        return new LocalNodeProcess(options, process, log);
    }

    /// <summary>SIGTERM (a graceful leave), then SIGKILL if the node has not exited within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
            return;
        Resume(); // a stopped process would only act on SIGTERM once continued
        Signals.Send(_process.Id, Signals.SigTerm);
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>SIGKILL: the node dies at once, as in a crash. Returns the UTC instant the signal was sent.</summary>
    public DateTime Kill()
    {
        var at = DateTime.UtcNow;
        if (!_process.HasExited)
            Signals.Send(_process.Id, Signals.SigKill);
        if (IsPaused)
            IsPaused = false; // a stopped process dies of SIGKILL too
        return at;
    }

    /// <summary>
    /// SIGSTOP: the process stops answering anything (heartbeats, data plane) while its sockets stay
    /// open: to the rest of the cluster it is unreachable, as behind a partition. UTC instant returned.
    /// </summary>
    public DateTime Pause()
    {
        var at = DateTime.UtcNow;
        if (!_process.HasExited && Signals.Send(_process.Id, Signals.SigStop))
            IsPaused = true;
        return at;
    }

    /// <summary>SIGCONT after <see cref="Pause"/>: the partition heals.</summary>
    public DateTime Resume()
    {
        var at = DateTime.UtcNow;
        if (IsPaused && !_process.HasExited)
            Signals.Send(_process.Id, Signals.SigCont);
        IsPaused = false;
        return at;
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the process to exit; true if it did.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return _process.HasExited;
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
        LoggedProcess.CloseLog(_log);
    }

    private static IEnumerable<string> Arguments(NodeOptions o)
    {
        yield return "node";
        yield return "--role";
        yield return o.Kind.ToString().ToLowerInvariant();
        yield return "--name";
        yield return o.Name;
        yield return "--host";
        yield return o.Host;
        yield return "--port";
        yield return o.Port.ToString();
        foreach (var seed in o.Seeds)
        {
            yield return "--seed";
            yield return seed;
        }
        yield return "--data-dir";
        yield return o.DataDirectory;
        yield return "--journal";
        yield return o.JournalPath;
        yield return "--data-port";
        yield return o.DataPort.ToString();
        if (o.Nbd is not null)
        {
            yield return "--nbd";
            yield return o.Nbd;
        }
        if (!o.Votes)
        {
            yield return "--votes";
            yield return "false";
        }
        foreach (var pair in o.Overrides)
        {
            yield return "--set";
            yield return pair;
        }
    }

    /// <summary>How to start this same executable again: the apphost, or <c>dotnet mcactors.dll</c>.</summary>
    private static (string File, string[] Prefix) SelfCommand()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        var dll = typeof(LocalNodeProcess).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? (process, [dll]) : (process, []);
    }

}
