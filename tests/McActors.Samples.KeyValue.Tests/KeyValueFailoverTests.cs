using Akka.Actor;
using Akka.Cluster;
using McActors.Configuration;
using McActors.Testing.Xunit.InProcess;
using Xunit.Abstractions;

namespace McActors.Samples.KeyValue.Tests;

/// <summary>
/// The key-value store on a real cluster (arbiter + 2 replicas in this process, real coordinator,
/// data plane and stores): the primary's node crashes while clients put, the secondary takes over
/// with the table of the last committed checkpoint, and every acknowledged put is still there.
/// Clients talk to the nodes' front doors over Akka.Remote, from the arbiter's system.
/// </summary>
public sealed class KeyValueFailoverTests(ITestOutputHelper output) : InProcessCluster<KeyValueFailoverTests>(output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Every_put_acknowledged_before_and_after_the_primary_crashes_is_read_back_and_the_new_primarys_log_replays_to_its_table()
    {
        var replicas = new List<ActorSystem>();
        try
        {
            var settings = McActorsSettings.From(Sys.Settings.Config);
            var coordinator = StartCluster(settings, replicas, 2, Crashable, guest => KeyValueGuestActor.Props(guest),
                node => node.ActorOf(KeyValueFrontDoor.Props(Cluster.Get(node).SelfAddress.ToString()), KeyValueFrontDoor.Name));
            var before = await AwaitStatus(coordinator, s => s.Primary is not null && s.Secondaries.Count == 1, "roles assigned", Patience);

            var acknowledged = new Dictionary<string, string>();
            for (var i = 0; i < 40; i++)
                await PutAcknowledged(replicas, $"key-{i % 25}", $"before-{i}", acknowledged);
            // Puts in flight when the primary dies: each client retries until a primary says done.
            var inFlight = Enumerable.Range(0, 10).Select(i => Call<PutDone>(replicas, new Put($"flight-{i}", $"flight-{i}"))).ToList();

            await Stop(replicas, NodeOf(replicas, before.Primary!));
            foreach (var done in await Task.WhenAll(inFlight))
                acknowledged[done.Key] = done.Key;
            for (var i = 0; i < 20; i++)
                await PutAcknowledged(replicas, $"key-{i}", $"after-{i}", acknowledged);
            var after = await AwaitStatus(coordinator, s => s.Generation > before.Generation && s.LastFailover?.ResumedAt is not null, "failover", Patience);
            Assert.NotEqual(before.Primary, after.Primary);

            foreach (var (key, value) in acknowledged)
                Assert.Equal(new Value(key, value), await Call<Value>(replicas, new Get(key)));
            var verdict = await Call<Verified>(replicas, Verify.Instance);
            Assert.True(verdict.Ok, verdict.Detail);
            Assert.Equal(acknowledged.Count, verdict.Keys);
            Assert.True(verdict.Records >= 70, $"{verdict.Records} records, 70 puts were acknowledged");
        }
        finally
        {
            await TerminateAll(replicas);
        }
    }

    private async Task PutAcknowledged(List<ActorSystem> replicas, string key, string value, Dictionary<string, string> acknowledged)
    {
        var done = await Call<PutDone>(replicas, new Put(key, value));
        Assert.Equal(key, done.Key);
        acknowledged[key] = value;
    }

    private Task<T> Call<T>(List<ActorSystem> replicas, object request) =>
        KeyValueClient.AskPrimaryAsync<T>(() => [.. replicas.Select(node =>
            Sys.ActorSelection(new RootActorPath(Cluster.Get(node).SelfAddress) / "user" / KeyValueFrontDoor.Name))], request, Patience);
}
