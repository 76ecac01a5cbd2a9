using McActors.Hosting;
using McActors.Node.LocalCluster;

namespace McActors.Node.Bench.Nbd;

/// <summary>
/// P1: qemu-nbd serving a local raw file, with qemu's defaults (cache=writeback: writes land in the
/// page cache, a FLUSH is an fdatasync). The baseline of one machine and no replication.
/// </summary>
public sealed class QemuNbdTarget : INbdBenchTarget
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly ToolProcess _server;

    private QemuNbdTarget(string name, string description, ToolProcess server, int port)
    {
        Name = name;
        Description = description;
        _server = server;
        Port = port;
    }

    public string Name { get; }
    public string Description { get; }
    public int Port { get; }
    public string Uri => $"nbd://127.0.0.1:{Port}";

    public static async Task<QemuNbdTarget> StartAsync(string name, string description, string directory, long sizeBytes, CancellationToken cancel)
    {
        Directory.CreateDirectory(directory);
        var image = Path.Combine(directory, "volume.raw");
        using (var file = new FileStream(image, FileMode.Create, FileAccess.Write))
            file.SetLength(sizeBytes);
        var port = FreePorts.Take(1)[0];
        // -t: serve one client after another (fio connects once per workload); -x '': the default export.
        var server = ToolProcess.Start(BenchTool.QemuNbd,
            ["-f", "raw", "-t", "-x", "", "-b", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), image],
            Path.Combine(directory, "qemu-nbd.log"));
        var target = new QemuNbdTarget(name, description, server, port);
        try
        {
            await NbdReady.WaitAsync(target.Uri, StartTimeout, () => server.HasExited ? $"qemu-nbd exited: {server.Tail()}" : null, cancel);
            return target;
        }
        catch
        {
            await target.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
