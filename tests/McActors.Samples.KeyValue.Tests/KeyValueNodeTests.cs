using Akka.Actor;
using Akka.Cluster;
using McActors.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace McActors.Samples.KeyValue.Tests;

/// <summary>
/// The sample's node, as its Program.cs builds it (Generic Host, configuration keys, AddKeyValueNode):
/// an arbiter and two replicas in this process become ready, and a client puts and gets through a front door.
/// </summary>
public sealed class KeyValueNodeTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"mcactors-kv-node-{Guid.NewGuid():N}");
    private readonly List<IHost> _hosts = [];

    [Fact]
    public async Task Three_generic_hosts_become_ready_and_serve_puts_and_gets_through_any_front_door()
    {
        var ports = FreePorts.Take(5);
        var seed = $"127.0.0.1:{ports[0]}";
        foreach (var (kind, index) in new[] { ("Arbiter", 0), ("Replica", 1), ("Replica", 2) })
            _hosts.Add(await StartNode(new Dictionary<string, string?>
            {
                ["McActors:Kind"] = kind,
                ["McActors:Name"] = index == 0 ? "arbiter" : $"replica-{index}",
                ["McActors:Port"] = ports[index].ToString(),
                ["McActors:DataPort"] = ports[2 + index].ToString(),
                ["McActors:Seeds"] = seed,
                ["McActors:DataDirectory"] = Path.Combine(_root, index == 0 ? "arbiter" : $"replica-{index}"),
                ["McActors:Set"] = "mcactors.checkpoint.epoch-interval = 50ms; mcactors.volume.size = 32MiB",
            }));

        foreach (var host in _hosts)
            await AwaitReady(host);
        var client = _hosts[0].Services.GetRequiredService<ActorSystem>();
        var doors = _hosts.Skip(1).Select(h => client.ActorSelection(
            new RootActorPath(Cluster.Get(h.Services.GetRequiredService<ActorSystem>()).SelfAddress) / "user" / KeyValueFrontDoor.Name)).ToList();
        var done = await Ask<PutDone>(doors, new Put("greeting", "hello"));
        Assert.Equal("greeting", done.Key);
        Assert.True(done.Epoch >= 1, $"put done in epoch {done.Epoch}");
        Assert.Equal(new Value("greeting", "hello"), await Ask<Value>(doors, new Get("greeting")));
    }

    private static async Task<IHost> StartNode(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddHealthChecks();
        builder.Services.AddKeyValueNode(NodeOptions.From(builder.Configuration.GetSection("McActors")));
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }

    private async Task AwaitReady(IHost host)
    {
        var health = host.Services.GetRequiredService<HealthCheckService>();
        var deadline = DateTime.UtcNow + Patience;
        HealthReport report;
        do
        {
            report = await health.CheckHealthAsync();
            if (report.Status == HealthStatus.Healthy)
            {
                // Healthy because the checks pass, not because there are none.
                Assert.Contains(McActorsHostingExtensions.ReadinessCheck, report.Entries.Keys);
                return;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200)); // polling a health endpoint, as an orchestrator does
        }
        while (DateTime.UtcNow < deadline);
        Assert.Fail($"not ready in {Patience}: {string.Join("; ", report.Entries.Select(e => $"{e.Key} {e.Value.Status} {e.Value.Description}"))}");
    }

    private static Task<T> Ask<T>(IReadOnlyList<ActorSelection> doors, object request) =>
        KeyValueClient.AskPrimaryAsync<T>(() => doors, request, Patience);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var host in Enumerable.Reverse(_hosts))
        {
            await host.StopAsync(TimeSpan.FromSeconds(30));
            host.Dispose();
        }
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
