using McActors.Storage.Io;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Storage.Tests;

/// <summary>
/// The batched paths of copy-before-write and rollback: runs of old blocks read with one scattered
/// read (zero blocks mixed in, runs split across batches), and a rollback over several logs that
/// writes each block once, from the oldest stash.
/// </summary>
public sealed class CopyBeforeWriteBatchingTests : IDisposable
{
    private const int BlockSize = 4096;
    private readonly TempDirectory _dir = new("cbw-batching");

    public void Dispose() => _dir.Dispose();

    private static byte[] Pattern(int length, byte seed)
    {
        var data = new byte[length];
        for (var i = 0; i < length; i++)
            data[i] = (byte)(seed + i * 7 + i / BlockSize);
        return data;
    }

    private static byte[] ReadAll(RollbackStore store, int length)
    {
        var read = new byte[length];
        store.Read(0, read);
        return read;
    }

    [Fact]
    public void A_write_over_zero_and_data_blocks_stashes_each_as_its_kind_and_rolls_back_to_the_exact_old_content()
    {
        using var store = RollbackStore.Create(_dir.Path, VolumeDescriptor.New(1 << 20, BlockSize));
        // Checkpoint 1: blocks 1, 2 and 5 hold data, 0, 3, 4, 6 and 7 are holes (zero).
        foreach (var block in new[] { 1, 2, 5 })
            store.Write(1, block * BlockSize, Pattern(BlockSize, (byte)block));
        store.Prepare(1);
        store.Commit(1);
        var checkpoint = ReadAll(store, 8 * BlockSize);
        var before = store.Counters;

        // One write over all eight: one scattered read, records of both kinds in one run.
        store.Write(2, 0, Pattern(8 * BlockSize, 99));
        store.Prepare(2);

        var after = store.Counters;
        Assert.Equal(8, after.BlocksStashed - before.BlocksStashed);
        Assert.Equal(5, after.ZeroBlocksStashed - before.ZeroBlocksStashed);
        store.RollbackTo(1);
        Assert.Equal(checkpoint, ReadAll(store, 8 * BlockSize));
    }

    [Fact]
    public void A_run_of_stashes_larger_than_what_is_left_of_a_batch_is_split_over_batches_and_rolls_back()
    {
        // The smallest batch (64 KiB) holds 15 full records: a 256 KiB write of data blocks needs five batches.
        var options = new RollbackStoreOptions { WriteAheadBatchBytes = 64 << 10 };
        using var store = RollbackStore.Create(_dir.Path, VolumeDescriptor.New(1 << 20, BlockSize), options);
        var old = Pattern(256 << 10, 3);
        store.Write(1, 0, old);
        store.Prepare(1);
        store.Commit(1);
        var syncsBefore = store.Counters.LogSyncs;

        store.Write(2, 4 * BlockSize, Pattern(64 << 10, 50)); // part of it queued in a batch first
        store.Write(2, 0, Pattern(256 << 10, 77));
        store.Prepare(2);

        Assert.True(store.Counters.LogSyncs - syncsBefore >= 4, $"{store.Counters.LogSyncs - syncsBefore} log syncs for 64 records in 64 KiB batches");
        store.RollbackTo(1);
        Assert.Equal(old, ReadAll(store, 256 << 10));

        // Epoch 3 stashes blocks whose epoch-2 write still waits in the batch: its old content must be epoch 2's.
        var epoch2 = (byte[])old.Clone();
        Pattern(64 << 10, 50).CopyTo(epoch2, 4 * BlockSize);
        store.Write(2, 4 * BlockSize, Pattern(64 << 10, 50));
        store.Write(3, 0, Pattern(256 << 10, 11));
        store.Prepare(3);
        store.RollbackTo(2);
        Assert.Equal(epoch2, ReadAll(store, 256 << 10));
    }

    [Fact]
    public void A_rollback_over_several_logs_writes_each_block_once_from_its_oldest_stash()
    {
        using var store = RollbackStore.Create(_dir.Path, VolumeDescriptor.New(1 << 20, BlockSize));
        store.Write(1, 0, Pattern(16 * BlockSize, 1));
        store.Prepare(1);
        store.Commit(1);
        var checkpoint = ReadAll(store, 32 * BlockSize);
        // Epochs 2 to 4 overwrite blocks 0-15 again and again; epoch 4 also blocks 16-31.
        store.Write(2, 0, Pattern(16 * BlockSize, 2));
        store.Write(3, 0, Pattern(16 * BlockSize, 3));
        store.Write(4, 0, Pattern(32 * BlockSize, 4));
        store.Prepare(4);
        var written = store.Counters.ImageBytesWritten;

        var result = store.RollbackTo(1);

        Assert.Equal(3, result.LogsApplied);
        Assert.Equal(checkpoint, ReadAll(store, 32 * BlockSize));
        // 32 distinct blocks restored: epoch 4's and 3's stashes of blocks 0-15 are overwritten by epoch 2's, so never written.
        Assert.Equal(32L * BlockSize, store.Counters.ImageBytesWritten - written);
    }

    [Fact]
    public void A_scattered_read_past_the_end_of_the_file_returns_what_the_file_holds()
    {
        var path = Path.Combine(_dir.Path, "short");
        var content = Pattern(10_000, 5);
        File.WriteAllBytes(path, content);
        using var handle = File.OpenHandle(path);
        var buffers = new[] { new byte[4096], new byte[4096], new byte[4096] };

        var n = PositionalIo.ReadFully(handle, [.. buffers.Select(b => new Memory<byte>(b))], 0);

        Assert.Equal(10_000, n);
        Assert.Equal(content, buffers.SelectMany(b => b).Take(10_000).ToArray());
        Assert.Equal(content.AsSpan(4096 + 1000, 100).ToArray(), buffers[1].AsSpan(1000, 100).ToArray());
    }
}
