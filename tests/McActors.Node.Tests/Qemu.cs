using System.Diagnostics;

namespace McActors.Node.Tests;

/// <summary>Runs qemu-utils (qemu-img, qemu-io) as real NBD clients; missing tools fail the test with how to install them.</summary>
internal static class Qemu
{
    public static (int ExitCode, string Output) Run(string tool, TimeSpan timeout, params string[] args)
    {
        var path = Environment.GetEnvironmentVariable("PATH")?.Split(':').Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException($"{tool} is not installed: run `apt-get install -y qemu-utils` (the NBD tests use it as a real client)");
        var start = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds:0} s");
        }
        return (process.ExitCode, output.Result + error.Result);
    }

    /// <summary>Runs and asserts exit 0 (and, for qemu-io, that no pattern check failed).</summary>
    public static string Ok(string tool, params string[] args)
    {
        var (exit, output) = Run(tool, TimeSpan.FromSeconds(60), args);
        Assert.True(exit == 0 && !output.Contains("failed", StringComparison.OrdinalIgnoreCase),
            $"{tool} {string.Join(' ', args)} exited {exit}:\n{output}");
        return output;
    }
}
