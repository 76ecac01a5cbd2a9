using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using McActors.Configuration;
using McActors.Guests;
using McActors.Hosting;
using McActors.Nbd;
using McActors.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace McActors.Node.Hosting;

/// <summary>
/// Runs one node in this process as a Generic Host over McActors.Hosting: the ActorSystem joined to
/// the cluster, the coordinator singleton (on replica and arbiter nodes), and the replica actor (on
/// replica nodes), with its NBD server if asked; logs through Microsoft.Extensions.Logging. Returns
/// when the process is asked to stop, or when the cluster downed this node (never two primaries: a
/// downed node's system terminates and its data-plane endpoints close with it).
/// </summary>
public static class NodeHost
{
    public const int ExitStopped = 0;
    public const int ExitDowned = 3;

    public static async Task<int> RunAsync(NodeOptions options, TextWriter output, CancellationToken cancel)
    {
        var config = FaultConfig.ForNode(NodeConfig.Build(options)); // a bad setting or override fails here
        // mcactors.testing.fault-injection: one injector, shared by the store and /user/fault-injection.
        var storeFaults = FaultConfig.IsEnabled(config) ? new StoreFaultInjector() : null;
        NbdServer? nbd = null;

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Services.AddAkka(NodeOptions.SystemName, akka =>
        {
            akka.ConfigureLoggers(loggers =>
            {
                loggers.ClearLoggers();
                loggers.AddLoggerFactory();
            });
            if (storeFaults is not null)
                akka.WithActors((system, _) => FaultInjection.Start(system, storeFaults));
            if (options.Kind == NodeKind.Arbiter)
            {
                akka.WithMcActorsArbiter(options, FaultConfig.ForNode);
                return;
            }
            akka.WithMcActorsReplica(options, replica =>
            {
                replica.WithConfig(FaultConfig.ForNode).WithSettings(s => s with { StoreFaults = storeFaults });
                if (options.Nbd is { } address)
                {
                    // The volume over NBD: the listener lives as long as the node; the export only
                    // while this node is primary (the NBD guest attaches it), otherwise clients are
                    // refused with the primary's address.
                    var nbdOptions = NbdOptions.From(config);
                    var slot = new NbdExportSlot(nbdOptions.ExportName, options.Name);
                    replica.Guest(NbdGuestActor.ForReplica(slot, nbdOptions)).WithNodeActors((system, _) =>
                    {
                        system.ActorOf(NbdPrimaryTracker.Props(slot), "nbd-primary-tracker");
                        var log = system.Log;
                        nbd = StartNbd(address, slot, nbdOptions, line => log.Info(line));
                    });
                }
            });
        });

        using var host = builder.Build();
        try
        {
            await host.StartAsync(cancel);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            return ExitStopped;
        }
        var system = host.Services.GetRequiredService<ActorSystem>();
        var stopRequested = false;
        try
        {
            await output.WriteLineAsync($"node {options.Name} ({options.Kind}) at {Akka.Cluster.Cluster.Get(system).SelfAddress}, data in {options.DataDirectory}" +
                (nbd is null ? "" : $", NBD at {nbd.Endpoint} while primary"));
            await using (cancel.Register(() => stopRequested = true))
            {
                await Task.WhenAny(system.WhenTerminated, Task.Delay(Timeout.Infinite, cancel));
            }
        }
        finally
        {
            // Coordinated shutdown (a graceful leave) when asked to stop; after a downing, only the cleanup.
            await host.StopAsync(CancellationToken.None);
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

    private static NbdServer StartNbd(string address, NbdExportSlot slot, NbdOptions options, Action<string> log)
    {
        try
        {
            return NbdServer.Start(NbdServer.ParseEndpoint(address), slot, options, log);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new ArgumentException($"cannot serve NBD at {address}: {e.Message}", e);
        }
    }
}
