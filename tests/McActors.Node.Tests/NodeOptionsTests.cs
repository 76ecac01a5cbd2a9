using McActors.Hosting;
using McActors.Node.Hosting;

namespace McActors.Node.Tests;

public sealed class NodeOptionsTests
{
    private static NodeOptions Node(NodeKind kind, bool votes = true) =>
        new(kind, "n", "127.0.0.1", 4000, [], "/tmp/n", "/tmp/coordinator.db", 5000, [], Votes: votes);

    [Fact]
    public void Replicas_and_voting_arbiters_count_for_the_split_brain_resolver_and_observers_never()
    {
        Assert.Equal(["replica", "coordinator", NodeOptions.VoterRole], Node(NodeKind.Replica).Roles);
        Assert.Equal(["replica", "coordinator", NodeOptions.VoterRole], Node(NodeKind.Replica, votes: false).Roles);
        Assert.Equal(["arbiter", "coordinator", NodeOptions.VoterRole], Node(NodeKind.Arbiter).Roles);
        Assert.Equal(["arbiter", "coordinator"], Node(NodeKind.Arbiter, votes: false).Roles);
        Assert.Equal(["observer"], Node(NodeKind.Observer).Roles);
    }

    [Fact]
    public void The_split_brain_resolver_counts_the_voter_role()
    {
        var config = NodeConfig.Build(Node(NodeKind.Arbiter, votes: false));
        Assert.Equal(NodeOptions.VoterRole, config.GetString("akka.cluster.split-brain-resolver.keep-majority.role"));
        Assert.DoesNotContain(NodeOptions.VoterRole, config.GetStringList("akka.cluster.roles"));
    }
}
