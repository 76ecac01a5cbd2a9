using System.Diagnostics;

namespace McActors.Node.Tests;

/// <summary>Runs the real <c>mcactors</c> executable (built beside the tests) as a child process.</summary>
internal static class NodeProcess
{
    public static (int ExitCode, string Output, string Error) Run(TimeSpan timeout, params string[] args)
    {
        using var process = Start(drain: false, args);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"mcactors {string.Join(' ', args)} did not finish within {timeout}");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    /// <summary>Starts mcactors with its output discarded (tests read the files it writes).</summary>
    public static Process Start(params string[] args) => Start(drain: true, args);

    private static Process Start(bool drain, string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "McActors.Node.dll"));
        foreach (var a in args)
            start.ArgumentList.Add(a);
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start mcactors");
        process.StandardInput.Close();
        if (drain)
        {
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }
        return process;
    }
}
