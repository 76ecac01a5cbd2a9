using McActors.Storage.Rollback;
using McActors.Storage.Tests.Support;
using McActors.Storage.Volume;

namespace McActors.Storage.Tests;

/// <summary>The epoch protocol the actors rely on: what is refused, what is idempotent, what is dropped.</summary>
public sealed class RollbackStoreProtocolTests : IDisposable
{
    private readonly TempDirectory _dir = new("protocol");
    private readonly RollbackStore _store;
    private readonly byte[] _block = new byte[4096];

    public RollbackStoreProtocolTests() => _store = RollbackStore.Create(_dir.Path, VolumeDescriptor.New(1 << 20));

    public void Dispose()
    {
        _store.Dispose();
        _dir.Dispose();
    }

    private int LogFiles() => Directory.GetFiles(Path.Combine(_dir.Path, RollbackStore.LogDirectoryName), "*.rblog").Length;

    [Fact]
    public void A_write_into_a_prepared_epoch_or_an_older_epoch_is_refused()
    {
        _store.Write(2, 0, _block);
        Assert.Throws<EpochOrderException>(() => _store.Write(1, 0, _block));
        _store.Prepare(2);
        var e = Assert.Throws<EpochOrderException>(() => _store.Write(2, 0, _block));
        Assert.Contains("epochs up to 2 are prepared", e.Message);
        _store.Write(3, 0, _block); // the store is still usable
    }

    [Fact]
    public void Commit_of_an_unprepared_epoch_is_refused_and_repeated_commits_change_nothing()
    {
        _store.Write(1, 0, _block);
        Assert.Throws<EpochOrderException>(() => _store.Commit(1));
        _store.Prepare(1);
        _store.Prepare(1); // a repeated Prepare answers again
        _store.Commit(1);
        _store.Commit(1);
        Assert.Equal(1, _store.CommittedEpoch);
        Assert.Equal(1, _store.PreparedEpoch);
    }

    [Fact]
    public void Commit_drops_the_logs_of_committed_epochs_and_keeps_later_ones()
    {
        for (var epoch = 1; epoch <= 4; epoch++)
            _store.Write(epoch, 0, _block);
        _store.Prepare(4);
        Assert.Equal(4, LogFiles());
        _store.Commit(2);
        Assert.Equal([3L, 4L], _store.LoggedEpochs);
        // The unlink happens in the background after the state is durable.
        Assert.True(_store.WaitForDeletes(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, LogFiles());
    }

    [Fact]
    public void Rollback_below_the_committed_or_above_the_prepared_checkpoint_is_refused()
    {
        for (var epoch = 1; epoch <= 3; epoch++)
            _store.Write(epoch, 0, _block);
        _store.Prepare(2);
        _store.Commit(1);
        Assert.Contains("committed", Assert.Throws<CheckpointUnavailableException>(() => _store.RollbackTo(0)).Message);
        Assert.Contains("never prepared", Assert.Throws<CheckpointUnavailableException>(() => _store.RollbackTo(3)).Message);
    }

    [Fact]
    public void A_prepare_in_three_steps_lets_the_next_epoch_write_between_them_and_rolls_back_to_the_checkpoint()
    {
        _block.AsSpan().Fill(1);
        _store.Write(1, 0, _block);
        _store.DrainWriteAhead();
        // The next epoch's writes arrive while the image is fsynced (the store actor releases its gate).
        _block.AsSpan().Fill(2);
        _store.Write(2, 0, _block);
        _store.FlushImage();
        _block.AsSpan().Fill(3);
        _store.Write(2, 4096, _block);
        _store.RecordPrepared(1);
        Assert.Equal(1, _store.PreparedEpoch);
        _store.RecordPrepared(1); // repeated: changes nothing
        var e = Assert.Throws<EpochOrderException>(() => _store.Write(1, 0, _block));
        Assert.Contains("epochs up to 1 are prepared", e.Message);
        _store.RollbackTo(1);
        var read = new byte[8192];
        _store.Read(0, read);
        Assert.All(read.AsSpan(0, 4096).ToArray(), b => Assert.Equal(1, b));
        Assert.All(read.AsSpan(4096).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void After_a_rollback_the_rolled_back_epochs_can_be_written_again()
    {
        _block.AsSpan().Fill(1);
        _store.Write(1, 0, _block);
        _store.Prepare(1);
        _block.AsSpan().Fill(2);
        _store.Write(2, 0, _block);
        _store.Prepare(2);
        _store.RollbackTo(1);
        _block.AsSpan().Fill(3);
        _store.Write(2, 0, _block);
        _store.RollbackTo(1);
        var read = new byte[4096];
        _store.Read(0, read);
        Assert.All(read, b => Assert.Equal(1, b));
    }

    [Fact]
    public void First_touch_tracking_of_a_64_GiB_sparse_volume_costs_memory_by_dirty_blocks()
    {
        using var dir = new TempDirectory("big");
        using var big = RollbackStore.Create(dir.Path, VolumeDescriptor.New(64L << 30));
        var random = new Random(7);
        for (var i = 0; i < 1000; i++)
            big.Write(1, (long)random.Next(1 << 24) * 4096, _block);
        Assert.Equal(64L << 30, new FileInfo(Path.Combine(dir.Path, RollbackStore.ImageFileName)).Length);
        Assert.InRange(big.FirstTouchBytes, 1, 1000 * 512); // at most one 512-byte leaf per dirty block
    }
}
