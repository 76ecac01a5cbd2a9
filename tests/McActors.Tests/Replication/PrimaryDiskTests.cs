using Akka.Configuration;
using McActors.Configuration;
using McActors.Protocol;
using McActors.Replication;

namespace McActors.Tests.Replication;

/// <summary>The primary's disk without an actor: when it keeps checkpoints alone, and when it stops.</summary>
public sealed class PrimaryDiskTests : IDisposable
{
    private static readonly VolumeSpec Volume = new(Guid.NewGuid(), 1 << 20, 4096);
    private static readonly McActorsSettings Settings = McActorsSettings.From(
        McActorsSettings.DefaultConfig);

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Block(byte value) => Enumerable.Repeat(value, 4096).ToArray();

    [Fact]
    public void A_followed_primary_keeps_no_checkpoint_and_writes_straight_to_its_image()
    {
        using var disk = PrimaryDisk.Open(_dir.Path, Volume, Settings);
        disk.Write(1, 0, Block(7));

        Assert.False(disk.KeepIfAlone(1, [1], followed: true));
        Assert.False(disk.KeepsCheckpointsAlone);
        var read = new byte[4096];
        disk.Image.Read(0, read);
        Assert.Equal(Block(7), read);
    }

    [Fact]
    public void An_unfollowed_close_attaches_the_store_once_and_a_commit_a_secondary_prepared_past_it_detaches_it()
    {
        using var disk = PrimaryDisk.Open(_dir.Path, Volume, Settings);

        Assert.True(disk.KeepIfAlone(1, [1], followed: false));
        Assert.True(disk.KeepsCheckpointsAlone);
        Assert.True(disk.DurableAt(1));
        disk.Write(2, 0, Block(9));
        Assert.False(disk.KeepIfAlone(2, [2], followed: false)); // prepared, not attached again
        Assert.True(disk.DurableAt(2));

        // Committed alone: the store stays. A secondary follows again, but the last commit had none: still kept here.
        Assert.False(disk.CommitIfAlone(new Commit(1, 2, Secondaries: 0), [2]));
        Assert.False(disk.KeepIfAlone(3, [3], followed: true));
        Assert.True(disk.DurableAt(3));
        // A commit on a secondary that covers every checkpoint prepared here ends keeping them.
        Assert.True(disk.CommitIfAlone(new Commit(1, 3, Secondaries: 1), [3]));
        Assert.False(disk.KeepsCheckpointsAlone);
        Assert.False(disk.KeepIfAlone(4, [4], followed: true));
    }

    [Fact]
    public void A_commit_on_a_secondary_older_than_what_was_prepared_here_keeps_the_store()
    {
        using var disk = PrimaryDisk.Open(_dir.Path, Volume, Settings);
        disk.KeepIfAlone(1, [1], followed: false);
        disk.KeepIfAlone(2, [2], followed: false);

        Assert.False(disk.CommitIfAlone(new Commit(1, 1, Secondaries: 1), [1]));
        Assert.True(disk.KeepsCheckpointsAlone);
    }
}
