using System.Net;
using System.Net.Sockets;
using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

/// <summary>The namespace harness on this machine's kernel (root, as in CI): real packets, real iptables.</summary>
public sealed class NetworkNamespacesTests
{
    private static readonly TimeSpan Probe = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task Two_namespaces_talk_a_cut_silences_them_a_heal_restores_them_and_teardown_leaves_nothing()
    {
        Assert.Null(NetworkNamespaces.Unavailable());
        string tag;
        using (var net = NetworkNamespaces.Create(["a", "b"]))
        {
            tag = net.Tag;
            Assert.NotEqual(net.AddressOf("a"), net.AddressOf("b"));
            // Port 9 has no listener: a refusal (RST) proves the SYN went and the answer came back.
            Assert.True(await net.ReachesAsync("a", net.AddressOf("b"), 9, Probe), "a cannot reach b before any cut");
            Assert.True(await net.ReachesAsync("b", net.AddressOf("a"), 9, Probe), "b cannot reach a before any cut");

            net.Cut("a", "b");
            Assert.False(await net.ReachesAsync("a", net.AddressOf("b"), 9, Probe), "a reaches b through a cut");
            Assert.False(await net.ReachesAsync("b", net.AddressOf("a"), 9, Probe), "b reaches a through a cut");
            Assert.True(await net.ReachesAsync(null, net.AddressOf("a"), 9, Probe), "a cut between nodes cut the host off");
            Assert.Equal(2, net.Rules("a").Count);

            net.Heal("a", "b");
            Assert.Empty(net.Rules("a"));
            Assert.Empty(net.Rules("b"));
            Assert.True(await net.ReachesAsync("a", net.AddressOf("b"), 9, Probe), "a cannot reach b after the heal");
            Assert.NotEmpty(NetworkNamespaces.Leftovers(tag));
        }
        Assert.Empty(NetworkNamespaces.Leftovers(tag));
    }

    [Fact]
    public async Task A_one_way_cut_breaks_connections_in_one_direction_only()
    {
        using var net = NetworkNamespaces.Create(["a", "b"]);
        net.CutOneWay("a", "b");
        // a's SYN is dropped; b's SYN reaches a, but a's answer to it is dropped too: a one-way cut
        // leaves no new TCP connection either way, though only a's side drops outgoing packets.
        Assert.False(await net.ReachesAsync("a", net.AddressOf("b"), 9, Probe));
        Assert.False(await net.ReachesAsync("b", net.AddressOf("a"), 9, Probe));
        Assert.Contains(net.Rules("a"), r => r.Contains("MCX-OUT") && r.Contains(net.AddressOf("b")));
        Assert.DoesNotContain(net.Rules("a"), r => r.Contains("MCX-IN"));
        Assert.Contains(net.Rules("b"), r => r.Contains("MCX-IN") && r.Contains(net.AddressOf("a")));
        net.Heal("b", "a");
        Assert.True(await net.ReachesAsync("a", net.AddressOf("b"), 9, Probe));
    }

    [Fact]
    public async Task An_isolated_node_keeps_its_side_and_its_host_port_and_loses_everything_else()
    {
        using var net = NetworkNamespaces.Create(["p", "q", "r"]);
        using var hostListener = new TcpListener(IPAddress.Parse(net.HostAddress), 0);
        hostListener.Start();
        var hostPort = ((IPEndPoint)hostListener.LocalEndpoint).Port;
        net.Isolate("p", keep: ["q"], hostPorts: [7000]);

        Assert.True(await net.ReachesAsync("p", net.AddressOf("q"), 9, Probe), "p lost q, its own side");
        Assert.False(await net.ReachesAsync("p", net.AddressOf("r"), 9, Probe), "p reaches r across the partition");
        Assert.False(await net.ReachesAsync("r", net.AddressOf("p"), 9, Probe), "r reaches p across the partition");
        // The host's client still reaches p's server port, and nothing else of p.
        Assert.True(await net.ReachesAsync(null, net.AddressOf("p"), 7000, Probe), "the host lost p's kept port");
        Assert.False(await net.ReachesAsync(null, net.AddressOf("p"), 7001, Probe), "the host reaches p's other ports");
        Assert.False(await net.ReachesAsync("p", net.HostAddress, hostPort, Probe), "p reaches the host's own listener");
        Assert.True(await net.ReachesAsync("r", net.HostAddress, hostPort, Probe), "r, not isolated, lost the host");

        net.HealAll();
        Assert.True(await net.ReachesAsync("r", net.AddressOf("p"), 9, Probe), "r cannot reach p after the heal");
        Assert.True(await net.ReachesAsync("p", net.HostAddress, hostPort, Probe), "p cannot reach the host after the heal");
    }

    [Fact]
    public async Task A_flapping_link_is_cut_on_the_seeded_schedule_and_ends_healed()
    {
        using var net = NetworkNamespaces.Create(["a", "b"]);
        var range = (TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(150));
        var first = await net.FlapAsync("a", "b", new Random(7), TimeSpan.FromMilliseconds(600), range, range, CancellationToken.None);
        Assert.NotEmpty(first);
        Assert.All(first, c => Assert.InRange(c.Length, range.Item1, range.Item2));
        Assert.Empty(net.Rules("a"));
        Assert.Empty(net.Rules("b"));
        Assert.True(await net.ReachesAsync("a", net.AddressOf("b"), 9, Probe));
        // The same seed, the same cut lengths in the same order. How many cuts fit in the 600 ms
        // depends on how long each iptables call takes on a loaded machine: compare what both made.
        var second = await net.FlapAsync("a", "b", new Random(7), TimeSpan.FromMilliseconds(600), range, range, CancellationToken.None);
        var both = Math.Min(first.Count, second.Count);
        Assert.True(both >= 1, $"no cut in one of the runs ({first.Count}, {second.Count})");
        Assert.Equal(first.Take(both).Select(c => c.Length), second.Take(both).Select(c => c.Length));
    }

    [Fact]
    public void Bad_names_are_refused_naming_the_problem()
    {
        Assert.Contains("repeat", Assert.Throws<ArgumentException>(() => NetworkNamespaces.Create(["a", "a"])).Message);
        using var net = NetworkNamespaces.Create(["a"]);
        Assert.Contains("no namespace for node z", Assert.Throws<ArgumentException>(() => net.AddressOf("z")).Message);
    }
}
