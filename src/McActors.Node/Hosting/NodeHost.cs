using McActors.Hosting;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Guests;
using McActors.Nbd;
using McActors.Replication;
using McActors.Testing;

namespace McActors.Node.Hosting;

/// <summary>
/// Runs one node in this process: the ActorSystem joined to the cluster, the coordinator singleton
/// (on replica and arbiter nodes), and the replica actor (on replica nodes), with its NBD server if asked. Returns when the
/// process is asked to stop, or when the cluster downed this node (never two primaries: a downed
/// node's system terminates and its data-plane endpoints close with it).
/// </summary>
public static class NodeHost
{
    public const int ExitStopped = 0;
    public const int ExitDowned = 3;

    public static async Task<int> RunAsync(NodeOptions options, TextWriter output, CancellationToken cancel)
    {
        var config = FaultConfig.ForNode(NodeConfig.Build(options));
        // mcactors.testing.fault-injection: one injector, shared by the store and /user/fault-injection.
        var storeFaults = FaultConfig.IsEnabled(config) ? new StoreFaultInjector() : null;
        var settings = McActorsSettings.From(config) with { StoreFaults = storeFaults };
        Directory.CreateDirectory(options.DataDirectory);
        CoordinatorJournal.SetJournalMode(options.JournalPath, config.GetString("mcactors.coordinator.sqlite.journal-mode"),
            config.GetTimeSpan("mcactors.coordinator.sqlite.busy-timeout"));
        var system = ActorSystem.Create(NodeOptions.SystemName, config);
        var cluster = Cluster.Get(system);
        using var pauses = new PauseDetector(system, settings.PauseLimit);
        cluster.RegisterOnMemberUp(pauses.Start); // a node not yet a member cannot have been downed
        system.ActorOf(QuarantineGuard.Props(), "quarantine-guard");
        var stopRequested = false;
        NbdServer? nbd = null;
        try
        {
            if (storeFaults is not null)
                FaultInjection.Start(system, storeFaults);
            var coordinator = CoordinatorSingleton.Start(system, settings);
            if (options.Kind == NodeKind.Replica)
            {
                Func<GuestContext, Props>? guest = null;
                if (options.Nbd is { } address)
                {
                    // The volume over NBD: the listener lives as long as the node; the export only
                    // while this node is primary (the NBD guest attaches it), otherwise clients are
                    // refused with the primary's address.
                    var nbdOptions = NbdOptions.From(config);
                    var slot = new NbdExportSlot(nbdOptions.ExportName, options.Name);
                    system.ActorOf(NbdPrimaryTracker.Props(slot), "nbd-primary-tracker");
                    var log = system.Log;
                    try
                    {
                        nbd = NbdServer.Start(NbdServer.ParseEndpoint(address), slot, nbdOptions, line => log.Info(line));
                    }
                    catch (System.Net.Sockets.SocketException e)
                    {
                        throw new ArgumentException($"cannot serve NBD at {address}: {e.Message}", e);
                    }
                    guest = NbdGuestActor.ForReplica(slot, nbdOptions);
                }
                var replica = new ReplicaSettings(options.Name, options.DataDirectory, options.Host, options.DataPort, settings, guest, options.Nbd);
                system.ActorOf(ReplicaActor.Props(replica, coordinator), "replica");
            }
            await output.WriteLineAsync($"node {options.Name} ({options.Kind}) at {cluster.SelfAddress}, data in {options.DataDirectory}" +
                (nbd is null ? "" : $", NBD at {nbd.Endpoint} while primary"));
            await using (cancel.Register(() =>
            {
                stopRequested = true;
                CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
            }))
            {
                await system.WhenTerminated;
            }
        }
        finally
        {
            if (!system.WhenTerminated.IsCompleted)
                await system.Terminate();
            // A downed or stopped node serves no NBD: its clients see the connection close.
            if (nbd is not null)
                await nbd.DisposeAsync();
        }
        if (stopRequested)
            return ExitStopped;
        await output.WriteLineAsync($"node {options.Name} left the cluster (downed or removed); stopped");
        return ExitDowned;
    }
}
