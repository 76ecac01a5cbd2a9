using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Hosting;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Guests;
using McActors.Replication;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace McActors.Hosting;

/// <summary>Key of the coordinator singleton's proxy in the <see cref="ActorRegistry"/>.</summary>
public sealed class McActorsCoordinator;

/// <summary>Key of the node's replica actor (<c>/user/replica</c>) in the <see cref="ActorRegistry"/>.</summary>
public sealed class McActorsReplica;

/// <summary>
/// McActors nodes on Akka.Hosting. A replica node with your own guest:
/// <code>
/// services.AddAkka(NodeOptions.SystemName, akka => akka.WithMcActorsReplica(node, replica => replica.Guest(MyGuest.Props)));
/// </code>
/// an arbiter: <c>akka.WithMcActorsArbiter(node)</c>. Each adds the node's configuration (the shipped
/// hocon/ files, then <paramref name="node"/>'s address, roles, seeds, journal and overrides), the
/// guards every node runs, a liveness check (the actor system runs) and a readiness check (this
/// node is an Up cluster member), and the coordinator singleton every replica and arbiter can host.
/// </summary>
public static class McActorsHostingExtensions
{
    public const string ReadinessCheck = "mcactors-cluster-member-up";

    /// <summary>A replica: it becomes primary or secondary when the coordinator says; as primary it runs the guest <paramref name="configure"/> names.</summary>
    public static AkkaConfigurationBuilder WithMcActorsReplica(this AkkaConfigurationBuilder builder, NodeOptions node,
        Action<McActorsReplicaOptions>? configure = null)
    {
        if (node.Kind != NodeKind.Replica)
            throw new ArgumentException($"node {node.Name} is {node.Kind}, not a replica");
        var options = new McActorsReplicaOptions();
        configure?.Invoke(options);
        return builder.WithMcActorsNode(node, options.ConfigAdjust).WithMcActorsCoordinator().WithActors((system, registry) =>
        {
            foreach (var start in options.NodeActors)
                start(system, registry);
            var settings = options.Settings(McActorsSettings.From(system.Settings.Config));
            var replica = new ReplicaSettings(node.Name, node.DataDirectory, node.Host, node.DataPort, settings, options.GuestFactory, node.Nbd);
            registry.Register<McActorsReplica>(system.ActorOf(ReplicaActor.Props(replica, registry.Get<McActorsCoordinator>()), "replica"));
        });
    }

    /// <summary>An arbiter: a vote for the Split Brain Resolver (if <see cref="NodeOptions.Votes"/>) and a home for the coordinator.</summary>
    public static AkkaConfigurationBuilder WithMcActorsArbiter(this AkkaConfigurationBuilder builder, NodeOptions node,
        Func<Config, Config>? adjustConfig = null)
    {
        if (node.Kind != NodeKind.Arbiter)
            throw new ArgumentException($"node {node.Name} is {node.Kind}, not an arbiter");
        return builder.WithMcActorsNode(node, adjustConfig).WithMcActorsCoordinator();
    }

    /// <summary>The coordinator singleton (hosted by the oldest node with the coordinator role) and its proxy, registered as <see cref="McActorsCoordinator"/>.</summary>
    public static AkkaConfigurationBuilder WithMcActorsCoordinator(this AkkaConfigurationBuilder builder) =>
        builder.WithActors((system, registry) =>
            registry.Register<McActorsCoordinator>(CoordinatorSingleton.Start(system, McActorsSettings.From(system.Settings.Config))));

    /// <summary>
    /// The node's configuration, guards and health checks, without a role's actors;
    /// <paramref name="adjustConfig"/> has the last word on the configuration (the fault toolkit's
    /// <c>FaultConfig.ForNode</c> adds its transport adapter there).
    /// </summary>
    public static AkkaConfigurationBuilder WithMcActorsNode(this AkkaConfigurationBuilder builder, NodeOptions node,
        Func<Config, Config>? adjustConfig = null)
    {
        var config = (adjustConfig ?? (c => c))(NodeConfig.Build(node));
        var settings = McActorsSettings.From(config); // a bad setting fails here, before anything starts
        Directory.CreateDirectory(node.DataDirectory);
        CoordinatorJournal.SetJournalMode(node.JournalPath, config.GetString("mcactors.coordinator.sqlite.journal-mode"),
            config.GetTimeSpan("mcactors.coordinator.sqlite.busy-timeout"));
        return builder
            .AddHocon(config, HoconAddMode.Prepend)
            .WithActors((system, _) =>
            {
                var pauses = new PauseDetector(system, settings.PauseLimit);
                Cluster.Get(system).RegisterOnMemberUp(pauses.Start); // a node not yet a member cannot have been downed
                system.RegisterOnTermination(pauses.Dispose);
                system.ActorOf(QuarantineGuard.Props(), "quarantine-guard");
            })
            .WithActorSystemLivenessCheck()
            .WithHealthCheck(ReadinessCheck, (system, _, _) =>
            {
                var self = Cluster.Get(system).SelfMember;
                return Task.FromResult(self.Status == MemberStatus.Up
                    ? HealthCheckResult.Healthy($"{self.Address} is Up")
                    : HealthCheckResult.Unhealthy($"{self.Address} is {self.Status}"));
            }, HealthStatus.Unhealthy, ["ready"]);
    }
}

/// <summary>What <see cref="McActorsHostingExtensions.WithMcActorsReplica"/> runs on a replica node.</summary>
public sealed class McActorsReplicaOptions
{
    internal Func<GuestContext, Props>? GuestFactory { get; private set; }

    internal List<Action<ActorSystem, IActorRegistry>> NodeActors { get; } = [];

    internal Func<McActorsSettings, McActorsSettings> Settings { get; private set; } = s => s;

    internal Func<Config, Config>? ConfigAdjust { get; private set; }

    /// <summary>The guest the replica runs while primary (by default the built-in synthetic guest).</summary>
    public McActorsReplicaOptions Guest(Func<GuestContext, Props> factory)
    {
        GuestFactory = factory;
        return this;
    }

    /// <summary>Actors of your own that live as long as the node (a front door for your guest's clients), started before the replica.</summary>
    public McActorsReplicaOptions WithNodeActors(Action<ActorSystem, IActorRegistry> start)
    {
        NodeActors.Add(start);
        return this;
    }

    /// <summary>Has the last word on the node's configuration (see <see cref="McActorsHostingExtensions.WithMcActorsNode"/>).</summary>
    public McActorsReplicaOptions WithConfig(Func<Config, Config> adjust)
    {
        ConfigAdjust = adjust;
        return this;
    }

    /// <summary>Adjusts the settings read from configuration (e.g. fault injection into the store in tests).</summary>
    public McActorsReplicaOptions WithSettings(Func<McActorsSettings, McActorsSettings> adjust)
    {
        Settings = adjust;
        return this;
    }
}
