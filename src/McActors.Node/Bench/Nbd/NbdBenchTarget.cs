namespace McActors.Node.Bench.Nbd;

/// <summary>An NBD server that <c>bench nbd</c> runs fio against; disposing it stops its processes.</summary>
public interface INbdBenchTarget : IAsyncDisposable
{
    /// <summary>Short name used in the rows: p1, p2, mcactors.</summary>
    string Name { get; }

    /// <summary>What it is, for the table's header.</summary>
    string Description { get; }

    /// <summary>Where fio connects: <c>nbd://HOST:PORT</c>.</summary>
    string Uri { get; }
}

/// <summary>Waits until an NBD server completes a handshake, by asking qemu-img about its export.</summary>
internal static class NbdReady
{
    private static readonly TimeSpan Attempt = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(100);

    public static async Task WaitAsync(string uri, TimeSpan timeout, Func<string?> failure, CancellationToken cancel)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (failure() is { } why)
                throw new BenchFailedException(why);
            var (exit, output) = await ToolProcess.RunAsync(BenchTool.QemuImg, ["info", "-f", "raw", uri], Attempt, cancel);
            if (exit == 0)
                return;
            last = output.Trim();
            await Task.Delay(Pause, cancel);
        }
        throw new BenchFailedException($"{uri} did not serve its export within {timeout.TotalSeconds:0} s (qemu-img info: {last})");
    }
}
