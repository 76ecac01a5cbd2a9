using System.Diagnostics;

namespace McActors.Node.LocalCluster;

/// <summary>
/// A child process (a node, a bench's qemu server) whose stdout and stderr go line by line to a log
/// file, and whose stdin is closed: none of them reads it, and a closed one keeps them off the
/// terminal. Lines that arrive after the log was disposed are dropped.
/// </summary>
internal static class LoggedProcess
{
    public static (Process Process, StreamWriter Log) Start(string file, IEnumerable<string> args, string logPath)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(log, e.Data);
        process.ErrorDataReceived += (_, e) => Append(log, e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, log);
    }

    /// <summary>Closes the log; taken under the same lock as every line, so none is written into a disposed writer.</summary>
    public static void CloseLog(StreamWriter log)
    {
        lock (log)
            log.Dispose();
    }

    private static void Append(StreamWriter log, string? line)
    {
        if (line is null)
            return;
        lock (log)
        {
            if (log.BaseStream.CanWrite)
                log.WriteLine(line);
        }
    }
}
