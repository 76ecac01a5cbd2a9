using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace McActors.Hosting;

/// <summary>
/// TCP ports free on 127.0.0.1 right now, for the listeners of local clusters and benches. They are
/// drawn below the kernel's ephemeral range: a port the kernel hands out (bind to port 0) may be
/// given again, between our check and the node's bind, as the source port of any outgoing
/// connection on the machine, which chaos found ("address already in use" on a data-plane port).
/// Below that range only another listener can take it: a small race loopback tests accept.
/// </summary>
public static class FreePorts
{
    private const string EphemeralRange = "/proc/sys/net/ipv4/ip_local_port_range";

    /// <summary>The lowest port drawn: above the well-known and most registered service ports.</summary>
    private const int Lowest = 20000;

    public static int[] Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var highest = EphemeralLow() - 1;
        if (highest - Lowest < 1000)
            return FromKernel(count); // an unusual range: fall back to the kernel's choice
        var taken = new List<int>(count);
        for (var attempt = 0; taken.Count < count; attempt++)
        {
            if (attempt > 100 * Math.Max(count, 1))
                throw new InvalidOperationException($"no {count} free TCP ports found between {Lowest} and {highest} on 127.0.0.1");
            var port = Random.Shared.Next(Lowest, highest + 1);
            if (!taken.Contains(port) && IsFree(port))
                taken.Add(port);
        }
        return [.. taken];
    }

    private static bool IsFree(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>The first port of the ephemeral range (Linux's default 32768 where it cannot be read).</summary>
    private static int EphemeralLow()
    {
        try
        {
            var fields = File.ReadAllText(EphemeralRange).Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(fields[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32768;
        }
    }

    private static int[] FromKernel(int count)
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
