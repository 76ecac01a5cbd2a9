using Akka.Configuration;

namespace McActors.Testing;

/// <summary>Configuration that fault injection needs, and the switch a node reads.</summary>
public static class FaultConfig
{
    /// <summary>The key of hocon/mcactors.conf that makes a node start <c>/user/fault-injection</c>.</summary>
    public const string FaultInjectionKey = "mcactors.testing.fault-injection";

    /// <summary>
    /// Puts Akka.Remote's throttle transport adapter under the TCP transport, so that
    /// <see cref="NetworkFaults"/> can blackhole a link. Add it in front of an ActorSystem's
    /// configuration (<c>FaultConfig.ThrottleAdapter.WithFallback(config)</c>); without it
    /// blackholing fails.
    /// </summary>
    public static Config ThrottleAdapter { get; } = ConfigurationFactory.ParseString(
        "akka.remote.dot-netty.tcp.applied-adapters = [trttl]");

    /// <summary>True when <see cref="FaultInjectionKey"/> is on.</summary>
    public static bool IsEnabled(Config config) => config.GetBoolean(FaultInjectionKey, false);

    /// <summary>A node's configuration: with the throttle adapter when fault injection is on, unchanged otherwise.</summary>
    public static Config ForNode(Config config) => IsEnabled(config) ? ThrottleAdapter.WithFallback(config) : config;
}
