using Akka.Actor;
using Akka.Configuration;

namespace McActors.Testing;

/// <summary>Configuration that fault injection needs, and the switch a node reads.</summary>
public static class FaultConfig
{
    /// <summary>The key of src/McActors/reference.conf that makes a node start <c>/user/fault-injection</c>.</summary>
    public const string FaultInjectionKey = "mcactors.testing.fault-injection";

    /// <summary>
    /// The protocol of Akka addresses under the throttle adapter: <c>akka.trttl.tcp://system@host:port</c>.
    /// Systems with and without the adapter cannot talk to each other: turn it on for every node.
    /// </summary>
    public const string Scheme = "akka.trttl.tcp";

    private const string PlainScheme = "akka.tcp";
    private const string AdaptersKey = "akka.remote.dot-netty.tcp.applied-adapters";

    /// <summary>
    /// Puts Akka.Remote's throttle transport adapter under the TCP transport, so that
    /// <see cref="NetworkFaults"/> can blackhole a link. Add it in front of an ActorSystem's
    /// configuration (<c>FaultConfig.ThrottleAdapter.WithFallback(config)</c>), on every system of
    /// the test: it changes the address protocol to <see cref="Scheme"/>.
    /// </summary>
    public static Config ThrottleAdapter { get; } = ConfigurationFactory.ParseString($"{AdaptersKey} = [trttl]");

    /// <summary>True when <see cref="FaultInjectionKey"/> is on.</summary>
    public static bool IsEnabled(Config config) => config.GetBoolean(FaultInjectionKey, false);

    /// <summary>True when the system runs the throttle adapter, which <see cref="NetworkFaults"/> needs.</summary>
    public static bool HasThrottleAdapter(ActorSystem system) =>
        system.Settings.Config.GetStringList(AdaptersKey, []).Contains("trttl");

    /// <summary>
    /// A node's configuration: unchanged when fault injection is off; when on, with the throttle
    /// adapter, and with its seed nodes given in the adapter's address protocol.
    /// </summary>
    public static Config ForNode(Config config)
    {
        if (!IsEnabled(config))
            return config;
        var seeds = config.GetStringList("akka.cluster.seed-nodes", [])
            .Select(s => s.StartsWith(PlainScheme + "://", StringComparison.Ordinal) ? Scheme + s[PlainScheme.Length..] : s)
            .Select(s => $"\"{s}\"");
        return ConfigurationFactory.ParseString($"akka.cluster.seed-nodes = [{string.Join(", ", seeds)}]")
            .WithFallback(ThrottleAdapter)
            .WithFallback(config);
    }

    /// <summary>The path of a node's <see cref="FaultInjectionActor"/>, for an ActorSelection from another fault-injection node.</summary>
    public static string FaultInjectionPath(string host, int port, string systemName = "mcactors") =>
        $"{Scheme}://{systemName}@{host}:{port}/user/{FaultInjectionActor.Name}";
}
