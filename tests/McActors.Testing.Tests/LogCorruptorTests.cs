using McActors.Storage;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using McActors.Testing;

namespace McActors.Testing.Tests;

public sealed class LogCorruptorTests : IDisposable
{
    private const int BlockSize = 4096;
    private readonly TempDirectory _dir = new("mcactors-corrupt");

    private string StoreDir => _dir.Sub("store");

    /// <summary>Checkpoint 1 prepared, then epoch 2 overwrites blocks 0..3 (block 3 was all zeroes: a zero record) and is prepared.</summary>
    private RollbackStore StoreWithTwoEpochs()
    {
        var store = RollbackStore.Create(StoreDir, new VolumeDescriptor(Guid.NewGuid(), 1 << 20, BlockSize));
        for (var b = 0; b < 3; b++)
            store.Write(1, b * BlockSize, Enumerable.Repeat((byte)(b + 1), BlockSize).ToArray());
        store.Prepare(1);
        for (var b = 0; b < 4; b++)
            store.Write(2, b * BlockSize, Enumerable.Repeat((byte)0xEE, BlockSize).ToArray());
        store.Prepare(2);
        return store;
    }

    [Fact]
    public void Records_are_counted_as_the_store_wrote_them()
    {
        using (StoreWithTwoEpochs())
        {
        }
        Assert.Equal(4, LogCorruptor.CountRecords(StoreDir, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogCorruptor.CorruptRecord(StoreDir, 2, 4));
    }

    [Theory]
    [InlineData(1)] // a record with data
    [InlineData(3)] // a zero record (header only)
    public void A_corrupt_record_makes_recovery_refuse_to_vouch_for_the_image(int record)
    {
        using (StoreWithTwoEpochs())
        {
        }
        var offset = LogCorruptor.CorruptRecord(StoreDir, 2, record);

        var e = Assert.Throws<RollbackLogChecksumException>(() => RollbackStore.Recover(StoreDir));
        Assert.Equal(LogCorruptor.LogPath(StoreDir, 2), e.Path);
        Assert.InRange(offset - e.RecordOffset, 0, BlockSize + 24);
    }

    [Fact]
    public void A_corrupt_record_makes_a_rollback_refuse_before_it_changes_anything()
    {
        using var store = StoreWithTwoEpochs();
        LogCorruptor.CorruptRecord(StoreDir, 2, 0);

        Assert.Throws<RollbackLogChecksumException>(() => store.RollbackTo(1));
        var block = new byte[BlockSize];
        using var image = VolumeImage.Open(Path.Combine(StoreDir, RollbackStore.ImageFileName), 1 << 20, writable: false);
        image.Read(BlockSize, block);
        Assert.All(block, b => Assert.Equal(0xEE, b)); // block 1 still has epoch 2's content: nothing was rolled back
    }

    [Fact]
    public void A_corrupt_header_is_reported_as_such()
    {
        using (StoreWithTwoEpochs())
        {
        }
        LogCorruptor.CorruptHeader(StoreDir, 2);
        Assert.Throws<RollbackLogHeaderCorruptException>(() => RollbackStore.Recover(StoreDir));
    }

    public void Dispose() => _dir.Dispose();
}
