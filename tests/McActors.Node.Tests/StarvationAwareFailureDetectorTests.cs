using McActors.Node.LocalCluster;

namespace McActors.Node.Tests;

/// <summary>
/// A node that stalls (SIGSTOP for 2 s: past what the detector forgives a silent peer, ~1.4 s with
/// the shipped settings; the test's stable-after keeps the cluster from downing it meanwhile) must
/// not accuse its peers when it wakes. The plain phi detector does (it finds a second without
/// heartbeats), and the Split Brain Resolver then downs accused and accuser together as
/// "indirectly connected": one stalled secondary took the primary down with it. The second row
/// runs Akka's plain detector to show the check sees exactly that.
/// </summary>
[Collection(nameof(LocalClusterTests))]
public sealed class StarvationAwareFailureDetectorTests
{
    private const string PlainDetector = "akka.cluster.failure-detector.implementation-class = \"Akka.Remote.PhiAccrualFailureDetector, Akka.Remote\"";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_secondary_waking_from_a_two_second_stall_accuses_no_peer_unless_the_plain_detector_runs(bool plain)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"mcactors-stall-test-{Guid.NewGuid():N}");
        try
        {
            string[] overrides = ["mcactors.checkpoint.epoch-interval = 50ms", "mcactors.volume.size = 32MiB",
                "akka.cluster.split-brain-resolver.stable-after = 5s", .. plain ? new[] { PlainDetector } : []];
            await using var cluster = LocalCluster.LocalCluster.Start(new LocalClusterOptions(dir, 2, overrides));
            var status = await cluster.WaitForRolesAsync(TimeSpan.FromSeconds(90), CancellationToken.None);
            var secondary = cluster.Node(status.Secondaries[0]);
            var others = cluster.Nodes.Where(n => n != secondary).ToList();

            var linesBefore = File.ReadLines(secondary.LogPath).Count();
            secondary.Pause();
            await Task.Delay(TimeSpan.FromSeconds(2));
            var wokeAt = secondary.Resume();
            // Long enough for the woken node's reaper to have run many times and its gossip to spread.
            await Task.Delay(TimeSpan.FromSeconds(3));

            var accused = others.Where(n => cluster.Observer.Membership.Of(n.Options.Host, n.Options.Port).UnreachableAt is { } at && at >= wokeAt)
                .Select(n => n.Options.Name).ToList();
            var accusations = File.ReadLines(secondary.LogPath).Skip(linesBefore).Count(l => l.Contains("Marking node(s) as UNREACHABLE"));
            if (plain)
                Assert.True(accused.Count > 0 || accusations > 0, $"the plain detector accused nobody after the stall; see {secondary.LogPath}");
            else
            {
                Assert.Empty(accused);
                Assert.Equal(0, accusations);
                Assert.Equal(status.Primary, (await cluster.Observer.StatusAsync(TimeSpan.FromSeconds(10))).Primary);
            }
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }
}
