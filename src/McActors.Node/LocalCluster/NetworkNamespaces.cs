using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace McActors.Node.LocalCluster;

// One file over ~400 lines on purpose: the namespace harness owns every rule it installs (bridge,
// veths, chains) so that teardown removes exactly those; each fault is one method beside its undo.

/// <summary>Which packets of a node an isolation drops: both ways, only what it receives, or only what it sends.</summary>
public enum CutDirection
{
    Both,

    /// <summary>The node receives nothing (it still sends).</summary>
    Inbound,

    /// <summary>The node sends nothing (it still receives).</summary>
    Outbound,
}

/// <summary>
/// A private network for one local cluster, so that partitions are real packet loss instead of a
/// paused process: a bridge on the host with the host's address (.1) and one network namespace per
/// node, joined to the bridge by a veth pair, with its own address (.2, .3, …) and loopback up.
/// Nodes run inside their namespace (<see cref="Command"/>); faults are iptables DROP rules inside
/// the namespaces, in two chains of our own (MCX-IN, MCX-OUT) hooked into INPUT and OUTPUT, so a
/// heal flushes only what we added and deleting a namespace deletes its rules. Nothing is routed
/// beyond the bridge: the subnet has no forwarding and no NAT.
/// Names are "mcx" + the owner's pid and a per-process counter in base 36 (interface names are at
/// most 15 bytes): a new harness deletes what harnesses of dead processes left, never a live one's.
/// Needs root, <c>ip</c> (iproute2) and <c>iptables</c>.
/// </summary>
public sealed partial class NetworkNamespaces : IDisposable
{
    public const string Prefix = "mcx";
    private const int InterfaceNameMax = 15;
    private const string InChain = "MCX-IN";
    private const string OutChain = "MCX-OUT";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(20);
    private static int _counter;

    private readonly string _ip;
    private readonly string _iptables;
    private readonly List<string> _names = [];
    private readonly Dictionary<string, int> _index = [];
    private readonly object _gate = new();
    private bool _disposed;

    private NetworkNamespaces(string ip, string iptables, string tag, int subnet)
    {
        _ip = ip;
        _iptables = iptables;
        Tag = tag;
        Subnet = subnet;
    }

    /// <summary>This harness's name prefix (bridge, namespaces and veths all start with it).</summary>
    public string Tag { get; }

    /// <summary>The x of 10.213.x.0/24.</summary>
    public int Subnet { get; }

    public string Bridge => Tag + "b";

    /// <summary>The host's address on the bridge: where the host's own members (the CLI's observer) bind, and where the host reaches the nodes from.</summary>
    public string HostAddress => Address(1);

    public string SubnetCidr => $"10.213.{Subnet}.0/24";

    /// <summary>Null when this machine can run namespaces; otherwise why not (not root, a tool missing).</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux())
            return "network namespaces need Linux";
        if (!Environment.IsPrivilegedProcess)
            return $"network namespaces need root (running as {Environment.UserName})";
        if (FindTool("ip") is null)
            return "network namespaces need `ip` (iproute2), not found on PATH or in /usr/sbin, /sbin";
        if (FindTool("iptables") is null)
            return "network faults need `iptables`, not found on PATH or in /usr/sbin, /sbin";
        return null;
    }

    /// <summary>Creates the bridge and one namespace per name (in order: the first gets .2).</summary>
    public static NetworkNamespaces Create(IReadOnlyList<string> names)
    {
        if (Unavailable() is { } why)
            throw new InvalidOperationException(why);
        if (names.Count is < 1 or > 200)
            throw new ArgumentException($"{names.Count} namespaces asked for: between 1 and 200 fit one /24");
        if (names.Distinct().Count() != names.Count)
            throw new ArgumentException($"namespace names repeat: {string.Join(", ", names)}");
        var ip = FindTool("ip")!;
        var iptables = FindTool("iptables")!;
        RemoveLeftovers(ip);
        var tag = $"{Prefix}{Base36(Environment.ProcessId)}-{Base36(Interlocked.Increment(ref _counter) % 1296)}";
        if ((tag + "h" + names.Count).Length > InterfaceNameMax)
            throw new InvalidOperationException($"interface names from tag {tag} would exceed {InterfaceNameMax} bytes");
        var net = new NetworkNamespaces(ip, iptables, tag, FreeSubnet(ip));
        try
        {
            net.Run(ip, "link", "add", net.Bridge, "type", "bridge");
            net.Run(ip, "addr", "add", $"{net.HostAddress}/24", "dev", net.Bridge);
            net.Run(ip, "link", "set", net.Bridge, "up");
            foreach (var name in names)
                net.AddNamespace(name);
        }
        catch
        {
            net.Dispose();
            throw;
        }
        return net;
    }

    /// <summary>The namespace of node <paramref name="name"/>.</summary>
    public string Namespace(string name) => $"{Tag}-{IndexOf(name)}";

    /// <summary>The node's own address, in its namespace.</summary>
    public string AddressOf(string name) => Address(IndexOf(name) + 2);

    /// <summary>How to run <paramref name="file"/> inside the node's namespace: <c>ip netns exec NS file args…</c> (ip execs it: same pid, same signals).</summary>
    public (string File, IReadOnlyList<string> Args) Command(string name, string file, IEnumerable<string> args) =>
        (_ip, ["netns", "exec", Namespace(name), file, .. args]);

    /// <summary>Drops every packet between <paramref name="a"/> and <paramref name="b"/>, both ways.</summary>
    public void Cut(string a, string b)
    {
        CutOneWay(a, b);
        CutOneWay(b, a);
    }

    /// <summary>Drops the packets <paramref name="from"/> sends to <paramref name="to"/>; those from <paramref name="to"/> still arrive.</summary>
    public void CutOneWay(string from, string to)
    {
        Rule(from, "-A", OutChain, "-d", AddressOf(to));
        Rule(to, "-A", InChain, "-s", AddressOf(from));
    }

    /// <summary>Undoes <see cref="Cut"/> and <see cref="CutOneWay"/> between the two (any direction).</summary>
    public void Heal(string a, string b)
    {
        foreach (var (self, peer) in new[] { (a, b), (b, a) })
        {
            DeleteAll(self, InChain, "-s", AddressOf(peer));
            DeleteAll(self, OutChain, "-d", AddressOf(peer));
        }
    }

    /// <summary>
    /// Cuts the node from everything on the subnet (the other nodes and the host), in
    /// <paramref name="direction"/>, except the nodes in <paramref name="keep"/> (its side of the
    /// partition) and the host's connections to the node's TCP <paramref name="hostPorts"/> (a
    /// client such as an NBD client on the host keeps reaching the node's server).
    /// </summary>
    public void Isolate(string name, CutDirection direction = CutDirection.Both, IReadOnlyCollection<string>? keep = null, IReadOnlyCollection<int>? hostPorts = null)
    {
        var others = keep?.Where(k => k != name).ToList() ?? [];
        var ports = hostPorts ?? [];
        if (direction != CutDirection.Outbound)
            IsolateOneWay(name, InChain, "-s", "--dport", others, ports);
        if (direction != CutDirection.Inbound)
            IsolateOneWay(name, OutChain, "-d", "--sport", others, ports);
    }

    /// <summary>
    /// One direction of <see cref="Isolate"/>: accepts the kept peers and the host's connections to the
    /// node's ports, then drops the rest of the subnet. <paramref name="peer"/> is the match on the other
    /// end's address (-s coming in, -d going out), <paramref name="nodePort"/> the one on the node's port.
    /// </summary>
    private void IsolateOneWay(string name, string chain, string peer, string nodePort, IEnumerable<string> others, IEnumerable<int> ports)
    {
        foreach (var k in others)
            Rule(name, "-A", chain, peer, AddressOf(k), "-j", "ACCEPT");
        foreach (var port in ports)
            Rule(name, "-A", chain, peer, HostAddress, "-p", "tcp", nodePort, Port(port), "-j", "ACCEPT");
        Rule(name, "-A", chain, peer, SubnetCidr);
    }

    /// <summary>Removes every cut of the node's own namespace (isolations, and its side of cuts).</summary>
    public void HealNode(string name)
    {
        Run(_ip, "netns", "exec", Namespace(name), _iptables, "-w", "-F", InChain);
        Run(_ip, "netns", "exec", Namespace(name), _iptables, "-w", "-F", OutChain);
    }

    /// <summary>Every cut of every namespace removed: the network is whole again.</summary>
    public void HealAll()
    {
        foreach (var name in _names)
            HealNode(name);
    }

    /// <summary>The DROP/ACCEPT rules now in the node's namespace, as <c>iptables -S</c> prints them (our chains only).</summary>
    public IReadOnlyList<string> Rules(string name) =>
        [.. new[] { InChain, OutChain }.SelectMany(chain =>
            Run(_ip, "netns", "exec", Namespace(name), _iptables, "-w", "-S", chain)
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(line => line.StartsWith("-A ", StringComparison.Ordinal)))];

    /// <summary>
    /// Cuts and heals the link between <paramref name="a"/> and <paramref name="b"/> on a schedule drawn
    /// from <paramref name="random"/> (cuts of <paramref name="cut"/>, gaps of <paramref name="healed"/>,
    /// each a uniform (min, max) range) for <paramref name="total"/>; ends healed. Returns the cuts as (start offset, length).
    /// </summary>
    public async Task<IReadOnlyList<(TimeSpan At, TimeSpan Length)>> FlapAsync(string a, string b, Random random, TimeSpan total,
        (TimeSpan Min, TimeSpan Max) cut, (TimeSpan Min, TimeSpan Max) healed, CancellationToken cancel)
    {
        var schedule = new List<(TimeSpan, TimeSpan)>();
        var clock = Stopwatch.StartNew();
        try
        {
            while (clock.Elapsed < total)
            {
                var length = Draw(random, cut);
                var gap = Draw(random, healed);
                schedule.Add((clock.Elapsed, length));
                Cut(a, b);
                await Task.Delay(length, cancel);
                Heal(a, b);
                await Task.Delay(gap, cancel);
            }
        }
        finally
        {
            Heal(a, b);
        }
        return schedule;
    }

    /// <summary>
    /// Whether a TCP SYN from <paramref name="from"/>'s namespace (null: the host) to
    /// <paramref name="address"/>:<paramref name="port"/> gets an answer within <paramref name="timeout"/>:
    /// a connection or a refusal (RST) both mean the packets went both ways; silence means a cut.
    /// </summary>
    public async Task<bool> ReachesAsync(string? from, string address, int port, TimeSpan timeout)
    {
        if (from is null)
        {
            using var client = new TcpClient();
            using var cancel = new CancellationTokenSource(timeout);
            try
            {
                await client.ConnectAsync(address, port, cancel.Token);
                return true;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return true;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                return false;
            }
        }
        // bash's /dev/tcp: no extra tool in the namespace; timeout(1) ends a connect that hangs on a cut.
        var seconds = Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        var (code, _, error) = Exec(_ip, ["netns", "exec", Namespace(from), "timeout", seconds, "bash", "-c", $"exec 3<>/dev/tcp/{address}/{port}"]);
        return code switch
        {
            0 => true,
            124 => false,
            _ when error.Contains("refused", StringComparison.OrdinalIgnoreCase) => true,
            _ when error.Contains("unreachable", StringComparison.OrdinalIgnoreCase) => false,
            _ => throw new InvalidOperationException($"probe {from} -> {address}:{port} failed (exit {code}): {error.Trim()}"),
        };
    }

    /// <summary>Deletes the namespaces (their rules go with them), the host ends of the veths and the bridge. Failures are reported together at the end.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
        }
        var errors = new List<string>();
        for (var i = 0; i < _names.Count; i++)
        {
            TryDelete(errors, _ip, "netns", "del", $"{Tag}-{i}");
            TryDelete(errors, _ip, "link", "del", $"{Tag}h{i}");
        }
        TryDelete(errors, _ip, "link", "del", Bridge);
        if (errors.Count > 0)
            throw new InvalidOperationException($"tearing down network {Tag} failed: {string.Join("; ", errors)}");
    }

    /// <summary>What is left on this machine with our prefix (namespaces and links): empty after every harness was disposed.</summary>
    public static IReadOnlyList<string> Leftovers(string? tag = null)
    {
        var ip = FindTool("ip") ?? throw new InvalidOperationException("`ip` (iproute2) not found");
        var prefix = tag ?? Prefix;
        return [.. ListNamespaces(ip).Concat(ListLinks(ip)).Where(n => n.StartsWith(prefix, StringComparison.Ordinal))];
    }

    private void AddNamespace(string name)
    {
        var i = _names.Count;
        _names.Add(name);
        _index[name] = i;
        var ns = $"{Tag}-{i}";
        string host = $"{Tag}h{i}", inside = $"{Tag}n{i}";
        Run(_ip, "netns", "add", ns);
        Run(_ip, "link", "add", host, "type", "veth", "peer", "name", inside);
        Run(_ip, "link", "set", host, "master", Bridge, "up");
        Run(_ip, "link", "set", inside, "netns", ns);
        Run(_ip, "-n", ns, "addr", "add", $"{Address(i + 2)}/24", "dev", inside);
        Run(_ip, "-n", ns, "link", "set", inside, "up");
        Run(_ip, "-n", ns, "link", "set", "lo", "up");
        foreach (var (chain, hook) in new[] { (InChain, "INPUT"), (OutChain, "OUTPUT") })
        {
            Run(_ip, "netns", "exec", ns, _iptables, "-w", "-N", chain);
            Run(_ip, "netns", "exec", ns, _iptables, "-w", "-A", hook, "-j", chain);
        }
    }

    /// <summary>One iptables rule in the node's namespace; DROP unless the spec ends with its own -j.</summary>
    private void Rule(string name, string op, string chain, params string[] match)
    {
        string[] jump = match.Contains("-j") ? [] : ["-j", "DROP"];
        Run(_ip, ["netns", "exec", Namespace(name), _iptables, "-w", op, chain, .. match, .. jump]);
    }

    /// <summary>Deletes every copy of a DROP rule (a link cut twice, flapping) until iptables says there is none.</summary>
    private void DeleteAll(string name, string chain, params string[] match)
    {
        string[] args = ["netns", "exec", Namespace(name), _iptables, "-w", "-D", chain, .. match, "-j", "DROP"];
        for (var i = 0; i < 1000; i++)
        {
            var (code, _, error) = Exec(_ip, args);
            if (code == 0)
                continue;
            if (error.Contains("does a matching rule exist", StringComparison.OrdinalIgnoreCase) || error.Contains("Bad rule", StringComparison.OrdinalIgnoreCase))
                return;
            throw new InvalidOperationException($"`{Line(_ip, args)}` failed (exit {code}): {error.Trim()}");
        }
    }

    private int IndexOf(string name) =>
        _index.TryGetValue(name, out var i) ? i : throw new ArgumentException($"no namespace for node {name} in network {Tag} (nodes: {string.Join(", ", _names)})");

    private string Address(int host) => $"10.213.{Subnet}.{host}";

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    private string Run(string file, params string[] args)
    {
        var (code, output, error) = Exec(file, args);
        if (code != 0)
            throw new InvalidOperationException($"`{Line(file, args)}` failed (exit {code}): {error.Trim()}");
        return output;
    }

    private static void TryDelete(List<string> errors, string file, params string[] args)
    {
        var (code, _, error) = Exec(file, args);
        // Gone already (a veth goes with its namespace's end): what teardown wanted. "No such device"
        // is the same, seen when the kernel removes the peer between ip's lookup and its delete.
        if (code != 0 && !error.Contains("No such file", StringComparison.OrdinalIgnoreCase)
            && !error.Contains("Cannot find device", StringComparison.OrdinalIgnoreCase)
            && !error.Contains("No such device", StringComparison.OrdinalIgnoreCase)
            && !error.Contains("does not exist", StringComparison.OrdinalIgnoreCase))
            errors.Add($"`{Line(file, args)}` (exit {code}): {error.Trim()}");
    }

    private static (int Code, string Output, string Error) Exec(string file, IReadOnlyList<string> args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"`{Line(file, args)}` did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(CommandTimeout))
        {
            process.Kill();
            throw new TimeoutException($"`{Line(file, args)}` did not finish within {CommandTimeout.TotalSeconds:0} s");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    private static string Line(string file, IEnumerable<string> args) => string.Join(" ", args.Prepend(file));

    /// <summary>Deletes namespaces and links of our prefix whose owner process is gone (a crashed or killed run).</summary>
    private static void RemoveLeftovers(string ip)
    {
        foreach (var ns in ListNamespaces(ip).Where(IsOrphan))
            Exec(ip, ["netns", "del", ns]);
        foreach (var link in ListLinks(ip).Where(IsOrphan))
            Exec(ip, ["link", "del", link]);
    }

    private static bool IsOrphan(string name)
    {
        var match = OwnedName().Match(name);
        return match.Success && !Directory.Exists($"/proc/{FromBase36(match.Groups[1].Value)}");
    }

    private static IEnumerable<string> ListNamespaces(string ip) =>
        Exec(ip, ["netns", "list"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ')[0]);

    private static IEnumerable<string> ListLinks(string ip) =>
        Exec(ip, ["-o", "link", "show"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':', 3)).Where(f => f.Length >= 2)
            .Select(f => f[1].Trim().Split('@')[0]);

    /// <summary>A 10.213.x.0/24 with x in use by no interface on the host.</summary>
    private static int FreeSubnet(string ip)
    {
        var used = Exec(ip, ["-o", "-4", "addr", "show"]).Output;
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var x = Random.Shared.Next(1, 255);
            if (!used.Contains($" 10.213.{x}.", StringComparison.Ordinal))
                return x;
        }
        throw new InvalidOperationException("no free 10.213.x.0/24 subnet: every one is on some interface");
    }

    private static TimeSpan Draw(Random random, (TimeSpan Min, TimeSpan Max) range) =>
        range.Min + (range.Max - range.Min) * random.NextDouble();

    private static string? FindTool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    private static string Base36(int value)
    {
        const string digits = "0123456789abcdefghijklmnopqrstuvwxyz";
        var s = "";
        do
        {
            s = digits[value % 36] + s;
            value /= 36;
        }
        while (value > 0);
        return s;
    }

    private static long FromBase36(string s) => s.Aggregate(0L, (n, c) => n * 36 + (char.IsDigit(c) ? c - '0' : c - 'a' + 10));

    [GeneratedRegex("^mcx([0-9a-z]{1,6})-")]
    private static partial Regex OwnedName();
}
