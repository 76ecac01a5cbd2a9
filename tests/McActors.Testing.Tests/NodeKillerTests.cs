using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using McActors.Testing;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>
/// Three cluster nodes in this process with the product's cluster configuration (keep-majority
/// Split Brain Resolver): A (the test's system), B and C. Killing C must look like a crash.
/// </summary>
public sealed class NodeKillerTests : TestKit
{
    private static readonly TimeSpan Detection = TimeSpan.FromSeconds(20);
    private readonly ActorSystem _b;
    private readonly ActorSystem _c;

    public NodeKillerTests(ITestOutputHelper output) : base(Systems.ClusterNode(), "mcactors", output)
    {
        _b = ActorSystem.Create("mcactors", Systems.ClusterNode());
        _c = ActorSystem.Create("mcactors", Systems.ClusterNode());
        var seed = Cluster.Get(Sys).SelfAddress;
        foreach (var system in new[] { Sys, _b, _c })
            Cluster.Get(system).Join(seed);
        AwaitAssert(() =>
        {
            var members = Cluster.Get(Sys).State.Members;
            Assert.Equal(3, members.Count(m => m.Status == MemberStatus.Up));
        }, TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_killed_node_does_not_leave_it_becomes_unreachable_and_the_split_brain_resolver_downs_it()
    {
        var victim = Cluster.Get(_c).SelfAddress;
        Cluster.Get(Sys).Subscribe(TestActor, ClusterEvent.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.UnreachableMember));

        await NodeKiller.KillAsync(_c);
        Assert.True(_c.WhenTerminated.IsCompleted);

        var seen = new List<object>();
        FishForMessage(m =>
        {
            seen.Add(m);
            return m is ClusterEvent.MemberRemoved r && r.Member.Address == victim;
        }, Detection);

        Assert.Contains(seen, m => m is ClusterEvent.UnreachableMember u && u.Member.Address == victim);
        Assert.Contains(seen, m => m is ClusterEvent.MemberDowned d && d.Member.Address == victim);
        var removed = (ClusterEvent.MemberRemoved)seen[^1];
        Assert.Equal(MemberStatus.Down, removed.PreviousStatus); // downed, not Exiting: it never said goodbye
        Assert.DoesNotContain(seen, m => m is ClusterEvent.MemberLeft l && l.Member.Address == victim);
        Assert.DoesNotContain(seen, m => m is ClusterEvent.MemberExited x && x.Member.Address == victim);
        // The majority (A and B) survives.
        AwaitAssert(() => Assert.Equal(2, Cluster.Get(_b).State.Members.Count(m => m.Status == MemberStatus.Up)), Detection);
        Assert.False(Sys.WhenTerminated.IsCompleted);
    }

    [Fact]
    public async Task SIGKILL_ends_an_os_process_at_once()
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("the CI runs Linux");
        using var process = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        Assert.True(NodeKiller.KillProcess(process.Id));
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(128 + 9, process.ExitCode); // killed by signal 9, no handler ran
        Assert.False(NodeKiller.KillProcess(int.MaxValue), "no such process");
    }

    protected override void AfterAll()
    {
        Task.WaitAll([_b.Terminate(), _c.Terminate()], TimeSpan.FromSeconds(20));
        base.AfterAll();
    }
}
