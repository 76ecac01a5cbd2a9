using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using McActors.Nbd;
using McActors.Nbd.Tests;
using McActors.Node.LocalCluster;
using McActors.TestSupport;
using Xunit.Abstractions;

namespace McActors.Node.Tests;

/// <summary>
/// The volume over NBD on a real local cluster (`up` through the CLI), with qemu-utils as the clients:
/// qemu-img info/convert/compare and qemu-io, and a failover under a SIGKILL of the primary process.
/// </summary>
[Collection(nameof(LocalClusterTests))] // one multi-process cluster at a time on a 2-core machine
public sealed class NbdClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Up_serves_the_volume_to_qemu_img_and_qemu_io_and_a_secondary_names_the_primary()
    {
        using var dir = new TempDirectory("mcactors-nbd-up");
        using var up = NodeProcess.Start("up", "--data-dir", dir.Sub("cluster"), "--replicas", "2", "--epoch-ms", "50");
        try
        {
            var (primary, secondary) = await Roles(dir.Sub("cluster"));
            var url = $"nbd://{primary.Nbd}";

            Assert.Contains("virtual size: 256 MiB (268435456 bytes)", Qemu.Ok("qemu-img", "info", url));

            // qemu-img convert to the export, compare, and back.
            var (seed, _) = Seeds.Base();
            output.WriteLine($"seed {seed}");
            var source = dir.Sub("source.img");
            var content = new byte[4 << 20];
            new Random(seed).NextBytes(content);
            File.WriteAllBytes(source, content);
            Qemu.Ok("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, url);
            Assert.Contains("Images are identical", Qemu.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", source, url));
            var copy = dir.Sub("copy.img");
            Qemu.Ok("qemu-img", "convert", "-f", "raw", "-O", "raw", url, copy);
            Assert.Equal(256L << 20, new FileInfo(copy).Length);
            Assert.Contains("Images are identical", Qemu.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", source, copy));

            var io = Qemu.Ok("qemu-io", "-f", "raw", url, "-c", "write -P 0xab 0 1M", "-c", "flush", "-c", "read -P 0xab 0 1M",
                "-c", "write -z 1M 64k", "-c", "read -P 0 1M 64k", "-c", "discard 2M 64k", "-c", "write -f -P 0x11 3M 4k", "-c", "read -P 0x11 3M 4k");
            output.WriteLine(io);

            var (exit, refused) = Qemu.Run("qemu-img", TimeSpan.FromSeconds(30), "info", $"nbd://{secondary.Nbd}");
            Assert.NotEqual(0, exit);
            Assert.Contains($"serves NBD at {primary.Nbd}", refused);
        }
        finally
        {
            Stop(up);
        }
    }

    [Fact]
    public async Task A_flushed_pattern_survives_a_SIGKILL_of_the_primary_and_the_new_primarys_image_is_exact()
    {
        using var dir = new TempDirectory("mcactors-nbd-failover");
        var cluster = dir.Sub("cluster");
        using var up = NodeProcess.Start("up", "--data-dir", cluster, "--replicas", "2", "--epoch-ms", "50");
        try
        {
            var (primary, _) = await Roles(cluster);
            string[] writes = ["write -P 0x5c 0 1M", "write -P 0xa7 4M 512k", "write -P 0x3e 100M 4k"];
            Qemu.Ok("qemu-io", ["-f", "raw", $"nbd://{primary.Nbd}", .. writes.SelectMany(w => new[] { "-c", w }), "-c", "flush"]);

            // The same writes on a local image: what the replicated volume must hold.
            var expected = dir.Sub("expected.img");
            Qemu.Ok("qemu-img", "create", "-f", "raw", expected, "256M");
            Qemu.Ok("qemu-io", ["-f", "raw", expected, .. writes.SelectMany(w => new[] { "-c", w })]);

            var clock = Stopwatch.StartNew();
            Kill(primary);
            var promoted = await NewPrimary(cluster, primary);
            Assert.NotNull(promoted.Nbd);

            // The new primary serves once its promotion finished: retry the read until its export is up.
            string[] reads = ["read -P 0x5c 0 1M", "read -P 0xa7 4M 512k", "read -P 0x3e 100M 4k", "read -P 0 1M 3M"];
            string[] readArgs = ["-f", "raw", $"nbd://{promoted.Nbd}", .. reads.SelectMany(r => new[] { "-c", r })];
            var served = await Eventually.Get(() =>
            {
                var (exit, text) = Qemu.Run("qemu-io", TimeSpan.FromSeconds(30), readArgs);
                return exit == 0 && !text.Contains("failed", StringComparison.OrdinalIgnoreCase) && !text.Contains("Could not open") ? text : null;
            }, Startup, $"the pattern read back through {promoted.Name}'s export at {promoted.Nbd}");
            output.WriteLine($"{promoted.Name} served the flushed pattern {clock.ElapsedMilliseconds} ms after the SIGKILL:\n{served}");

            var image = Path.Combine(promoted.DataDir, "store", "volume.img");
            Assert.Contains("Images are identical", Qemu.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", expected, image));
        }
        finally
        {
            Stop(up);
        }
    }

    [Fact]
    public async Task A_write_completed_before_a_SIGKILL_of_the_primary_reads_back_after_a_reconnect_and_a_successful_flush()
    {
        using var dir = new TempDirectory("mcactors-nbd-reconnect");
        var cluster = dir.Sub("cluster");
        // Epochs of a minute: only a waiting reply closes one, as in issue 10's libnbd reproduction.
        using var up = NodeProcess.Start("up", "--data-dir", cluster, "--replicas", "2", "--epoch-ms", "60000");
        try
        {
            var (primary, _) = await Roles(cluster);
            var pattern = Enumerable.Repeat((byte)0xab, 65536).ToArray();
            using (var client = await Open(primary))
            {
                Assert.Equal(0u, client.Call(NbdProtocol.CmdWrite, 0, 65536, payload: pattern).Error); // the write completed
                client.SendRequest(NbdProtocol.CmdFlush, 8, 0, 0); // in flight, not waited for
                Kill(primary);
            }
            var promoted = await NewPrimary(cluster, primary);

            // The client reconnects to the new primary and resends the flush: it succeeds, so the write must be there.
            using var again = await Open(promoted);
            Assert.Equal(0u, again.Call(NbdProtocol.CmdFlush, 0, 0, handle: 8).Error);
            var (error, data) = again.Call(NbdProtocol.CmdRead, 0, 65536, handle: 9);
            Assert.Equal(0u, error);
            Assert.True(pattern.AsSpan().SequenceEqual(data),
                $"a completed write is lost after a successful FLUSH: read back {data.Count(b => b == 0xab)} of {data.Length} bytes of it");
        }
        finally
        {
            Stop(up);
        }
    }

    [Fact]
    public async Task A_primary_left_alone_then_SIGKILLed_comes_back_when_restarted_with_every_write_it_acknowledged()
    {
        using var dir = new TempDirectory("mcactors-nbd-alone");
        // min-replicas 0 (the default): alone, the primary acknowledges on its own durability.
        await using var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir.Sub("cluster"), 2,
            ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB", "mcactors.checkpoint.min-replicas = 0"], Nbd: true));
        var roles = await cluster.WaitForRolesAsync(Startup, CancellationToken.None);
        var primary = cluster.Node(roles.Primary!).Options;
        cluster.Kill(roles.Secondaries[0]);
        var alone = await Eventually.GetAsync(async () => await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(2)) is { Secondaries.Count: 0 } s ? s : null,
            Startup, "the secondary dropped from the replica set");

        var (seed, _) = Seeds.Base();
        output.WriteLine($"seed {seed}");
        var pattern = new byte[256 << 10];
        new Random(seed).NextBytes(pattern);
        using (var client = await Open(primary.Name, primary.Nbd!))
        {
            Assert.Equal(0u, client.Call(NbdProtocol.CmdWrite, 1 << 20, (uint)pattern.Length, payload: pattern).Error);
            Assert.Equal(0u, client.Call(NbdProtocol.CmdFlush, 0, 0, handle: 2).Error); // acknowledged: on the primary's disk only
        }
        cluster.Kill(primary.Name);
        // No secondary holds the last committed checkpoint: the volume waits until the primary's node restarts.
        await cluster.RestartAsync(primary.Name);
        var back = await Eventually.GetAsync(async () => await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(2)) is { } s
            && s.Generation > roles.Generation && s.Primary == primary.Name ? s : null, Startup, $"{primary.Name} primary again");
        output.WriteLine($"{primary.Name} is primary of generation {back.Generation} again at checkpoint {back.LastCommitted}");

        using var again = await Open(primary.Name, primary.Nbd!);
        var (error, data) = again.Call(NbdProtocol.CmdRead, 1 << 20, (uint)pattern.Length, handle: 3);
        Assert.Equal(0u, error);
        Assert.True(pattern.AsSpan().SequenceEqual(data), "a write acknowledged by a FLUSH on the primary alone is lost after its restart");
    }

    /// <summary>A client in transmission on <paramref name="node"/>'s export, retried until the export is up (a promotion finishes).</summary>
    private static Task<NbdTestClient> Open(TopologyNode node) => Open(node.Name, node.Nbd!);

    private static Task<NbdTestClient> Open(string name, string nbd) =>
        Eventually.Get(() =>
        {
            NbdTestClient? client = null;
            try
            {
                client = new NbdTestClient(IPEndPoint.Parse(nbd));
                client.Greet();
                client.SendOption(NbdProtocol.OptGo, NbdTestClient.GoData(""));
                while (client.ReceiveOptionReply() is var (_, type, _) && type != NbdProtocol.RepAck)
                {
                    if (type != NbdProtocol.RepInfo)
                    {
                        client.Dispose(); // refused: not primary yet
                        return null;
                    }
                }
                return client;
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                client?.Dispose();
                return null;
            }
        }, Startup, $"{name}'s NBD export at {nbd}");

    private static async Task<(TopologyNode Primary, TopologyNode Secondary)> Roles(string cluster)
    {
        var nodes = await Eventually.Get(() =>
        {
            if (!File.Exists(Path.Combine(cluster, TopologyFile.FileName)))
                return null;
            var all = TopologyFile.Read(cluster);
            return all.Any(n => n.Role == "primary") ? all : null;
        }, Startup, "cluster.json with a primary");
        var primary = nodes.Single(n => n.Role == "primary");
        var secondary = nodes.Single(n => n.Role == "secondary");
        Assert.NotNull(primary.Nbd);
        Assert.NotNull(secondary.Nbd);
        Assert.Null(nodes.Single(n => n.Role == "arbiter").Nbd);
        // The primary's export is attached when its guest starts, just after the role is assumed.
        await Eventually.Get(() => Qemu.Run("qemu-img", TimeSpan.FromSeconds(30), "info", $"nbd://{primary.Nbd}").ExitCode == 0 ? primary : null,
            Startup, $"the primary's NBD export at {primary.Nbd}");
        return (primary, secondary);
    }

    private static void Kill(TopologyNode node) =>
        Assert.True(Signals.Send(node.Pid, Signals.SigKill), $"cannot SIGKILL {node.Name} (pid {node.Pid})");

    /// <summary>The primary that cluster.json names once the cluster failed over from <paramref name="old"/>.</summary>
    private static Task<TopologyNode> NewPrimary(string cluster, TopologyNode old) =>
        Eventually.Get(() => TopologyFile.Read(cluster).FirstOrDefault(n => n.Role == "primary" && n.Name != old.Name),
            Startup, "a new primary in cluster.json");

    private static void Stop(Process up)
    {
        if (up.HasExited)
            return;
        Signals.Send(up.Id, Signals.SigTerm);
        if (!up.WaitForExit(TimeSpan.FromSeconds(60)))
            up.Kill(entireProcessTree: true);
    }
}
