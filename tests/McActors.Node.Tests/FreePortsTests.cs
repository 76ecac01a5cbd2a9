using McActors.Hosting;
using System.Net;
using System.Net.Sockets;
using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

public sealed class FreePortsTests
{
    [Fact]
    public void Ports_are_distinct_bindable_and_below_the_kernels_ephemeral_range()
    {
        var low = int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split('\t', ' ')[0]);
        var ports = FreePorts.Take(30);
        Assert.Equal(30, ports.Distinct().Count());
        // Outgoing connections take their source ports from the ephemeral range: a listener port there can be stolen.
        Assert.All(ports, p => Assert.InRange(p, 20000, low - 1));
        foreach (var port in ports)
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
        }
    }
}
