using System.Diagnostics;
using McActors.Storage;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using McActors.Testing;

namespace McActors.Testing.Tests;

public sealed class StoreFaultInjectorTests : IDisposable
{
    private const int BlockSize = 4096;
    private readonly TempDirectory _dir = new("mcactors-faults");
    private readonly StoreFaultInjector _faults = new();

    private RollbackStore CreateStore() => RollbackStore.Create(_dir.Sub("store"),
        new VolumeDescriptor(Guid.NewGuid(), 1 << 20, BlockSize), new RollbackStoreOptions { WriteAheadBatchBytes = 64 << 10, Faults = _faults });

    private static byte[] Block(byte value) => Enumerable.Repeat(value, BlockSize).ToArray();

    [Fact]
    public void A_healthy_injector_lets_every_write_through_and_counts_it()
    {
        for (var i = 0; i < 5; i++)
            _faults.BeforeWrite("f", i, 512);
        Assert.Equal(5, _faults.Writes);
        Assert.Equal(0, _faults.Failures);
        Assert.Equal("healthy", _faults.Description);
    }

    [Fact]
    public void FailAfterWrites_lets_exactly_n_writes_through_then_fails_every_write_until_healed()
    {
        _faults.FailAfterWrites(2);
        _faults.BeforeWrite("f", 0, 512);
        _faults.BeforeWrite("f", 512, 512);
        var e = Assert.Throws<IOException>(() => _faults.BeforeWrite("f", 1024, 512));
        Assert.Equal(StoreFaultInjector.EIO, e.HResult);
        Assert.Contains("f at 1024", e.Message);
        Assert.Throws<IOException>(() => _faults.BeforeWrite("f", 1536, 512));
        Assert.Equal(2, _faults.Failures);

        _faults.Heal();
        _faults.BeforeWrite("f", 2048, 512);
        Assert.Equal(5, _faults.Writes);
        Assert.Equal(2, _faults.Failures);
    }

    [Fact]
    public void NoSpace_throws_what_a_full_disk_throws_on_linux()
    {
        _faults.NoSpace();
        var e = Assert.Throws<IOException>(() => _faults.BeforeWrite("/x/volume.img", 0, 4096));
        Assert.Equal(28, e.HResult);
        Assert.StartsWith("No space left on device", e.Message);
    }

    [Fact]
    public void Counting_is_exact_when_many_threads_write_at_once()
    {
        _faults.FailAfterWrites(500);
        var failures = 0;
        Parallel.For(0, 2000, i =>
        {
            try
            {
                _faults.BeforeWrite("f", i, 1);
            }
            catch (IOException)
            {
                Interlocked.Increment(ref failures);
            }
        });
        Assert.Equal(1500, failures);
        Assert.Equal(1500, _faults.Failures);
        Assert.Equal(2000, _faults.Writes);
    }

    [Fact]
    public void SlowWrites_delays_each_write_then_lets_it_through()
    {
        _faults.SlowWrites(TimeSpan.FromMilliseconds(100));
        var watch = Stopwatch.StartNew();
        _faults.BeforeWrite("f", 0, 1);
        _faults.BeforeWrite("f", 1, 1);
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(190), $"two slow writes took {watch.Elapsed}");
        Assert.Equal(0, _faults.Failures);
    }

    [Fact]
    public void FailSync_fails_exactly_the_nth_matching_fsync_once_as_linux_reports_a_failed_writeback()
    {
        _faults.FailSync(2, pathEndsWith: "volume.img");
        _faults.BeforeSync("/s/store.state"); // not matching: does not count
        _faults.BeforeSync("/s/volume.img");
        Assert.Contains("fsync 2 of volume.img fails", _faults.Description);
        var e = Assert.Throws<IOException>(() => _faults.BeforeSync("/s/volume.img"));
        Assert.Equal(StoreFaultInjector.EIO, e.HResult);
        Assert.Contains("fsync of /s/volume.img", e.Message);
        _faults.BeforeSync("/s/volume.img"); // the retry "succeeds"
        Assert.Equal((4L, 1L, "healthy"), (_faults.Syncs, _faults.Failures, _faults.Description));
    }

    [Fact]
    public void A_failed_fsync_of_an_image_fails_every_later_one_of_it_so_no_caller_takes_the_retry_for_durability()
    {
        using var image = McActors.Storage.Volume.VolumeImage.Create(_dir.Sub("volume.img"), 1 << 20);
        image.Faults = _faults;
        image.Write(0, Block(1));
        _faults.FailSync(1, pathEndsWith: "volume.img");
        Assert.Throws<IOException>(image.Flush); // e.g. the primary's background fsync
        var later = Assert.Throws<IOException>(image.Flush); // e.g. the fsync before a FLUSH reply
        Assert.Contains("an earlier fsync", later.Message);
        Assert.Equal(1, _faults.Failures);
    }

    [Fact]
    public void A_failed_fsync_of_the_image_fails_the_prepare_and_the_store_never_prepares_again()
    {
        using var store = CreateStore();
        store.Write(1, 0, Block(1));
        store.Prepare(1);
        store.Write(2, 0, Block(2));
        _faults.FailSync(1, pathEndsWith: RollbackStore.ImageFileName);
        Assert.Throws<IOException>(() => store.Prepare(2));
        // The next fsync would succeed: the store must not be the one to try it.
        var e = Assert.Throws<StorageException>(() => store.Prepare(2));
        Assert.Contains("recover it from disk", e.Message);
        Assert.Equal(1, store.PreparedEpoch);
    }

    [Fact]
    public void A_failed_fsync_of_the_store_state_before_a_log_is_dropped_fails_the_store_and_keeps_the_log()
    {
        var dir = _dir.Sub("store");
        using var store = CreateStore();
        store.Write(1, 0, Block(1));
        store.Prepare(1);
        store.Write(2, 0, Block(2));
        _faults.FailSync(1, pathEndsWith: "store.state");
        store.Commit(1); // the deleter fsyncs the state (and fails) before it would unlink log 1
        Assert.True(store.WaitForDeletes(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, _faults.Failures);

        Assert.True(File.Exists(Path.Combine(dir, RollbackStore.LogDirectoryName, $"epoch-{1:D20}.rblog")));
        // The state fsync of this prepare would succeed without the commit's lost page: it must not run.
        var e = Assert.Throws<StorageException>(() => store.Prepare(2));
        Assert.Contains("fsync of", e.Message);
        Assert.Equal(1, store.PreparedEpoch);
    }

    [Fact]
    public void A_store_whose_disk_fails_refuses_to_prepare_and_recovers_to_its_last_prepared_checkpoint()
    {
        using (var store = CreateStore())
        {
            store.Write(1, 0, Block(1));
            store.Prepare(1);
            Assert.True(_faults.Writes > 0, "the store never called the hook");

            _faults.FailAfterWrites(0);
            store.Write(2, 0, Block(2)); // stashed and queued: the failure shows at the write-ahead step
            var e = Assert.Throws<IOException>(() => store.Prepare(2));
            Assert.Contains("Input/output error", e.Message);
            Assert.Equal(1, store.PreparedEpoch);
            Assert.ThrowsAny<Exception>(() => store.Write(2, 8192, Block(3))); // a failed store stays failed
        }

        _faults.Heal();
        using var recovered = RollbackStore.Recover(_dir.Sub("store"));
        Assert.Equal(1, recovered.PreparedEpoch);
        var block = new byte[BlockSize];
        recovered.Read(0, block);
        Assert.Equal(Block(1), block); // epoch 2 rolled back (it never got to the image anyway)
    }

    [Fact]
    public void A_direct_image_write_fails_with_ENOSPC_on_a_full_disk()
    {
        using var store = CreateStore();
        store.Write(1, 0, Block(1));
        store.Flush(); // block 0 is stashed for epoch 1 and nothing is queued: the next write goes straight to the image
        _faults.NoSpace();
        var e = Assert.Throws<IOException>(() => store.Write(1, 0, Block(9)));
        Assert.Equal(StoreFaultInjector.ENOSPC, e.HResult);
        Assert.Equal(1, _faults.Failures);
    }

    [Fact]
    public void A_slow_disk_makes_prepare_slow_but_correct()
    {
        using var store = CreateStore();
        _faults.SlowWrites(TimeSpan.FromMilliseconds(50));
        var watch = Stopwatch.StartNew();
        store.Write(1, 0, Block(1)); // one log append + one image write at prepare
        store.Prepare(1);
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(100), $"prepare on a slow disk took {watch.Elapsed}");
        var block = new byte[BlockSize];
        store.Read(0, block);
        Assert.Equal(Block(1), block);
    }

    [Fact]
    public void The_store_calls_the_hook_before_every_log_append_and_image_write_a_rollback_included()
    {
        var seen = new Recorder();
        var dir = _dir.Sub("recorded");
        using var store = RollbackStore.Create(dir, new VolumeDescriptor(Guid.NewGuid(), 1 << 20, BlockSize), new RollbackStoreOptions { Faults = seen });
        store.Write(1, 0, Block(1));
        store.Prepare(1);
        store.Write(2, 0, Block(2));
        store.Prepare(2);
        var beforeRollback = seen.Writes.Count;
        store.RollbackTo(1);

        var image = Path.Combine(dir, RollbackStore.ImageFileName);
        var log1 = Path.Combine(dir, RollbackStore.LogDirectoryName, $"epoch-{1:D20}.rblog");
        var log2 = Path.Combine(dir, RollbackStore.LogDirectoryName, $"epoch-{2:D20}.rblog");
        Assert.Equal([(log1, 4096L, 24), (image, 0L, BlockSize), (log2, 4096L, 24 + BlockSize), (image, 0L, BlockSize)], seen.Writes.Take(beforeRollback));
        Assert.Equal([(image, 0L, BlockSize)], seen.Writes.Skip(beforeRollback)); // the rollback restores block 0
    }

    private sealed class Recorder : McActors.Storage.Io.IStorageFaults
    {
        public List<(string Path, long Offset, int Length)> Writes { get; } = [];

        public void BeforeWrite(string path, long offset, int length)
        {
            lock (Writes)
                Writes.Add((path, offset, length));
        }
    }

    public void Dispose() => _dir.Dispose();
}
