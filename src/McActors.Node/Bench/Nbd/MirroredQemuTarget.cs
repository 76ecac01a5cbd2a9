using McActors.Hosting;
using System.Globalization;
using System.Text.Json.Nodes;

namespace McActors.Node.Bench.Nbd;

/// <summary>
/// P2: qemu-storage-daemon serving a raw file over NBD while a blockdev-mirror with
/// copy-mode=write-blocking copies every write synchronously to a second qemu-nbd (the secondary)
/// — QEMU's own synchronous replication. Its FLUSH reaches the local file only, never the secondary.
/// </summary>
public sealed class MirroredQemuTarget : INbdBenchTarget
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ReadyPoll = TimeSpan.FromMilliseconds(100);
    private readonly QemuNbdTarget _secondary;
    private readonly ToolProcess _daemon;
    private readonly int _port;

    private MirroredQemuTarget(QemuNbdTarget secondary, ToolProcess daemon, int port)
    {
        _secondary = secondary;
        _daemon = daemon;
        _port = port;
    }

    public string Name => "p2";
    public string Description => "qemu-storage-daemon, blockdev-mirror copy-mode=write-blocking to a second qemu-nbd";
    public string Uri => $"nbd://127.0.0.1:{_port}";

    public static async Task<MirroredQemuTarget> StartAsync(string directory, long sizeBytes, CancellationToken cancel)
    {
        Directory.CreateDirectory(directory);
        var secondary = await QemuNbdTarget.StartAsync("p2-secondary", "the mirror's target", Path.Combine(directory, "secondary"), sizeBytes, cancel);
        MirroredQemuTarget? target = null;
        try
        {
            var image = Path.Combine(directory, "volume.raw");
            using (var file = new FileStream(image, FileMode.Create, FileAccess.Write))
                file.SetLength(sizeBytes);
            var port = FreePorts.Take(1)[0];
            var qmp = Path.Combine(directory, "qmp.sock");
            var daemon = ToolProcess.Start(BenchTool.StorageDaemon,
            [
                "--blockdev", $"driver=file,filename={image},node-name=primary-file",
                "--blockdev", "driver=raw,file=primary-file,node-name=primary",
                "--blockdev", $"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={secondary.Port},node-name=secondary",
                "--nbd-server", $"addr.type=inet,addr.host=127.0.0.1,addr.port={port.ToString(CultureInfo.InvariantCulture)}",
                "--export", "type=nbd,id=export,node-name=primary,name=,writable=on",
                "--chardev", $"socket,path={qmp},server=on,wait=off,id=qmp",
                "--monitor", "chardev=qmp,mode=control",
            ], Path.Combine(directory, "qemu-storage-daemon.log"));
            target = new MirroredQemuTarget(secondary, daemon, port);
            await using (var client = await QmpClient.ConnectAsync(qmp, StartTimeout, cancel))
            {
                await client.ExecuteAsync("blockdev-mirror", new JsonObject
                {
                    ["job-id"] = "mirror",
                    ["device"] = "primary",
                    ["target"] = "secondary",
                    ["sync"] = "full",
                    ["copy-mode"] = "write-blocking",
                }, cancel);
                await WaitUntilReadyAsync(client, cancel);
            }
            await NbdReady.WaitAsync(target.Uri, StartTimeout, () => daemon.HasExited ? $"qemu-storage-daemon exited: {daemon.Tail()}" : null, cancel);
            return target;
        }
        catch
        {
            if (target is not null)
                await target.DisposeAsync();
            else
                await secondary.DisposeAsync();
            throw;
        }
    }

    /// <summary>Until the initial copy is done: from then on every write is mirrored before it completes.</summary>
    private static async Task WaitUntilReadyAsync(QmpClient client, CancellationToken cancel)
    {
        var deadline = DateTime.UtcNow + StartTimeout;
        while (DateTime.UtcNow < deadline)
        {
            var jobs = await client.ExecuteAsync("query-block-jobs", null, cancel) as JsonArray;
            var mirror = jobs?.OfType<JsonObject>().FirstOrDefault(j => j["device"]?.GetValue<string>() == "mirror")
                ?? throw new BenchFailedException("the blockdev-mirror job is gone (see qemu-storage-daemon.log)");
            if (mirror["ready"]?.GetValue<bool>() == true)
                return;
            await Task.Delay(ReadyPoll, cancel);
        }
        throw new BenchFailedException($"the blockdev-mirror job was not ready within {StartTimeout.TotalSeconds:0} s");
    }

    public async ValueTask DisposeAsync()
    {
        await _daemon.DisposeAsync();
        await _secondary.DisposeAsync();
    }
}
