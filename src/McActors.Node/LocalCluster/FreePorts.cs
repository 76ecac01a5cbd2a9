using System.Net;
using System.Net.Sockets;

namespace McActors.Node.LocalCluster;

/// <summary>TCP ports free on 127.0.0.1 right now (bound to port 0 and released; a small race that loopback tests accept).</summary>
public static class FreePorts
{
    public static int[] Take(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            listeners.ForEach(l => l.Stop());
        }
    }
}
