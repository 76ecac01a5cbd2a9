using System.Buffers.Binary;
using System.IO.Hashing;
using McActors.Storage.Rollback;
using McActors.Storage.Tests.Support;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Storage.Tests;

/// <summary>
/// Resync of a joining replica: only the chunks whose digest differs are copied, interleaved with
/// the live stream; after "sync complete at E" the store vouches for checkpoint E and later, and
/// for nothing before; a crash before that leaves a store that knows it must resync again.
/// </summary>
public sealed class RollbackStoreResyncTests(ITestOutputHelper output)
{
    private const int Sector = VolumeDescriptor.SectorSize;

    [Fact]
    public void Copying_the_differing_chunks_amid_live_writes_gives_the_primary_image_at_the_sync_checkpoint()
    {
        long chunksCopied = 0, chunksTotal = 0;
        // Each sequence fsyncs a dozen times: 25 keep it to seconds on a shared machine.
        Seeds.Run(25, seed =>
        {
            var random = new Random(seed);
            using var dir = new TempDirectory("resync");
            int[] blockSizes = [512, 4096, 65536];
            int[] batches = [64 << 10, 256 << 10, 4 << 20];
            var blockSize = blockSizes[random.Next(blockSizes.Length)];
            var options = new RollbackStoreOptions { WriteAheadBatchBytes = batches[random.Next(batches.Length)] };
            // A short last chunk now and then (the size is a multiple of the block size only).
            var size = random.Next(4, 40) * (64L << 10) + (blockSize < 64 << 10 ? random.Next(0, 4) * blockSize : 0);
            var descriptor = new VolumeDescriptor(Guid.NewGuid(), size, blockSize);

            var primary = new byte[size];
            FillRandomRegions(random, primary);

            // The joining replica's old image: mostly the primary's (an old primary come back, a
            // secondary that fell behind), or another volume altogether.
            var sameVolume = random.Next(4) != 0;
            var oldDescriptor = sameVolume ? descriptor : VolumeDescriptor.New(random.Next(1, 40) * (64L << 10), blockSize);
            var oldImage = new byte[oldDescriptor.SizeBytes];
            if (sameVolume)
            {
                primary.CopyTo(oldImage, 0);
                for (var i = random.Next(0, 8); i > 0; i--)
                    RandomWrite(random, oldImage, out _, out _);
            }
            else
                FillRandomRegions(random, oldImage);
            var cleanStop = random.Next(3) != 0;
            BuildOldStore(dir.Path, oldDescriptor, oldImage, options, cleanStop);

            using var store = RollbackStore.OpenForResync(dir.Path, descriptor, options);
            Assert.Equal(long.MaxValue, store.SyncedFrom);
            Assert.Empty(store.LoggedEpochs);
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(dir.Path, RollbackStore.LogDirectoryName)));
            if (!sameVolume)
                RandomOperations.AssertImage(store, new byte[size], "after opening for resync with another volume's image");
            else if (cleanStop)
                RandomOperations.AssertImage(store, oldImage, "after opening for resync: the old image is kept");

            var chunkBytes = ImageDigest.ChunkBytesFor(size, blockSize);
            var theirs = random.Next(2) == 0 ? store.ComputeDigest(chunkBytes) : ImageDigest.Compute(store.ImagePath, size, chunkBytes);
            var checkpoints = new Dictionary<long, byte[]>();
            var epoch = (long)random.Next(1, 1000);
            void Live()
            {
                RandomWrite(random, primary, out var offset, out var length);
                store.Write(epoch, offset, primary.AsSpan((int)offset, length));
            }
            void CloseEpoch()
            {
                checkpoints[epoch] = (byte[])primary.Clone();
                epoch++;
            }

            // The primary's side: chunk by chunk in order, each read at its turn (so after the
            // live writes before it), sent only if its hash differs from the replica's.
            var count = ImageDigest.ChunkCount(size, chunkBytes);
            for (var i = 0; i < count; i++)
            {
                for (var w = random.Next(0, 3); w > 0; w--)
                    Live();
                if (random.Next(6) == 0)
                    CloseEpoch();
                var chunk = primary.AsSpan(i * chunkBytes, ImageDigest.ChunkLength(size, chunkBytes, i));
                if (ImageDigest.Hash(chunk) != theirs[i])
                {
                    store.Write(epoch, (long)i * chunkBytes, chunk);
                    chunksCopied++;
                }
            }
            chunksTotal += count;

            var synced = epoch;
            store.MarkSynced(synced);
            Assert.Equal(synced, store.SyncedFrom);
            var below = Assert.Throws<ResyncIncompleteException>(() => store.Prepare(synced - 1));
            Assert.Equal(synced - 1, below.Epoch);
            for (var w = random.Next(0, 4); w > 0; w--)
                Live(); // writes after "sync complete" in the same epoch belong to checkpoint E too
            CloseEpoch();
            store.Prepare(synced);
            store.Commit(synced);

            // The replica goes on as any secondary: more epochs, some prepared; then a failover's rollback.
            var later = random.Next(1, 4);
            for (var e = 0; e < later; e++)
            {
                for (var w = random.Next(1, 6); w > 0; w--)
                    Live();
                CloseEpoch();
            }
            if (random.Next(2) == 0)
                store.Prepare(synced + random.Next(1, later + 1));
            var target = synced;
            if (random.Next(3) == 0 && store.PreparedEpoch > synced)
                target = random.Next((int)synced, (int)store.PreparedEpoch + 1);
            Assert.Throws<ResyncIncompleteException>(() => store.RollbackTo(synced - 1));
            store.RollbackTo(target);
            RandomOperations.AssertImage(store, checkpoints[target], $"after rollback to checkpoint {target} (synced from {synced})");
            Assert.Equal(synced, store.SyncedFrom);
        }, output);
        output.WriteLine($"{chunksCopied} of {chunksTotal} chunks copied");
        Assert.True(chunksCopied < chunksTotal, "every chunk was copied: the digest saved nothing");
    }

    [Fact]
    public void Nothing_below_the_sync_checkpoint_can_be_prepared_or_rolled_back_to()
    {
        using var dir = new TempDirectory("resync-refuse");
        var descriptor = VolumeDescriptor.New(1 << 20);
        using var store = RollbackStore.OpenForResync(dir.Path, descriptor);
        store.Write(500, 0, Filled(8192, 1));

        var e = Assert.Throws<ResyncIncompleteException>(() => store.Prepare(500));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("checkpoint 500", e.Message);
        Assert.Contains("never", e.Message);
        Assert.Equal(long.MaxValue, e.SyncedFrom);
        Assert.IsAssignableFrom<CannotVouchException>(e);
        Assert.Throws<ResyncIncompleteException>(() => store.RollbackTo(0));
        Assert.Equal(0, store.PreparedEpoch);
        store.Commit(499); // a coordinator's re-sent commit of a checkpoint before the sync: nothing to do
        Assert.Equal(0, store.CommittedEpoch);

        store.Write(501, 4096, Filled(4096, 2));
        store.MarkSynced(501);
        store.MarkSynced(501); // repeated: nothing changes
        Assert.Throws<EpochOrderException>(() => store.MarkSynced(502));
        var below = Assert.Throws<ResyncIncompleteException>(() => store.Prepare(500));
        Assert.Contains("checkpoint 500", below.Message);
        Assert.Contains("synced from 501", below.Message);
        store.Prepare(501);
        store.Commit(500);
        Assert.Equal(0, store.CommittedEpoch);
        store.Commit(501);
        store.Write(502, 0, Filled(4096, 3));
        Assert.Throws<ResyncIncompleteException>(() => store.RollbackTo(500));
        store.RollbackTo(501);
        var image = new byte[8192];
        store.Read(0, image);
        Assert.Equal([.. Filled(4096, 1), .. Filled(4096, 2)], image);

        // A store that was always in sync is synced from 0.
        using var other = RollbackStore.Create(dir.Sub("in-sync"), descriptor);
        Assert.Equal(0, other.SyncedFrom);
    }

    [Fact]
    public void A_crash_before_the_sync_completes_leaves_a_store_that_must_resync_again()
    {
        using var dir = new TempDirectory("resync-crash");
        var descriptor = VolumeDescriptor.New(1 << 20);
        var store = RollbackStore.OpenForResync(dir.Path, descriptor);
        store.Write(7, 0, Filled(64 << 10, 1));
        store.Write(8, 64 << 10, Filled(64 << 10, 2));
        store.Abandon();

        var files = StoreFiles.Fingerprint(dir.Path);
        var e = Assert.Throws<ResyncIncompleteException>(() => RollbackStore.Recover(dir.Path));
        Assert.Null(e.Epoch);
        Assert.Contains("never finished", e.Message);
        Assert.Equal(files, StoreFiles.Fingerprint(dir.Path));

        // Resync again, this time to the end; then a crash: the store recovers, synced from 9.
        store = RollbackStore.OpenForResync(dir.Path, descriptor);
        store.Write(9, 0, Filled(4096, 3));
        store.MarkSynced(9);
        store.Prepare(9);
        store.Write(10, 0, Filled(4096, 4));
        store.Abandon();
        using var recovered = RollbackStore.Recover(dir.Path);
        Assert.Equal(9, recovered.SyncedFrom);
        Assert.Equal(9, recovered.PreparedEpoch);
        Assert.Throws<ResyncIncompleteException>(() => recovered.RollbackTo(8));
        recovered.RollbackTo(9);
        var block = new byte[4096];
        recovered.Read(0, block);
        Assert.Equal(Filled(4096, 3), block);
    }

    [Fact]
    public void Marked_synced_without_a_prepare_a_crashed_store_recovers_but_vouches_for_nothing_yet()
    {
        using var dir = new TempDirectory("resync-marked");
        var store = RollbackStore.OpenForResync(dir.Path, VolumeDescriptor.New(1 << 20));
        store.Write(3, 0, Filled(4096, 1));
        store.MarkSynced(3);
        store.Abandon();
        using var recovered = RollbackStore.Recover(dir.Path);
        Assert.Equal(3, recovered.SyncedFrom);
        Assert.Throws<ResyncIncompleteException>(() => recovered.RollbackTo(0));
        Assert.Throws<CheckpointUnavailableException>(() => recovered.RollbackTo(3));
        // The copies were made durable by MarkSynced: the image holds them after the crash.
        var block = new byte[4096];
        recovered.Read(0, block);
        Assert.Equal(Filled(4096, 1), block);
    }

    [Fact]
    public void A_detached_store_keeps_its_image_and_can_only_be_opened_for_resync()
    {
        using var dir = new TempDirectory("detach");
        var descriptor = VolumeDescriptor.New(1 << 20);
        using (var store = RollbackStore.Create(dir.Path, descriptor))
        {
            store.Write(1, 0, Filled(8192, 1));
            store.Prepare(1);
            store.Write(2, 4096, Filled(8192, 2));
            store.Prepare(2);
            store.Commit(1);
            store.Write(3, 0, Filled(4096, 3));
            Assert.NotEmpty(store.LoggedEpochs);
        }
        var image = File.ReadAllBytes(Path.Combine(dir.Path, RollbackStore.ImageFileName));
        var descriptorBytes = File.ReadAllBytes(Path.Combine(dir.Path, VolumeDescriptor.FileName));

        RollbackStore.Detach(dir.Path);
        Assert.False(File.Exists(Path.Combine(dir.Path, StoreStateFile.FileName)));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(dir.Path, RollbackStore.LogDirectoryName)));
        Assert.Equal(image, File.ReadAllBytes(Path.Combine(dir.Path, RollbackStore.ImageFileName)));
        Assert.Equal(descriptorBytes, File.ReadAllBytes(Path.Combine(dir.Path, VolumeDescriptor.FileName)));
        var e = Assert.Throws<StoreDetachedException>(() => RollbackStore.Recover(dir.Path));
        Assert.Contains("detached", e.Message);
        Assert.IsAssignableFrom<CannotVouchException>(e);
        RollbackStore.Detach(dir.Path); // again: nothing left to remove, no error

        using var resync = RollbackStore.OpenForResync(dir.Path, descriptor);
        RandomOperations.AssertImage(resync, image, "after opening a detached store for resync");
    }

    [Fact]
    public void A_store_attached_to_a_detached_image_vouches_from_that_checkpoint_on_and_rolls_back_to_it_after_a_reopen()
    {
        using var dir = new TempDirectory("attach");
        var descriptor = VolumeDescriptor.New(1 << 20);
        using (var store = RollbackStore.Create(dir.Path, descriptor))
        {
            store.Write(1, 0, Filled(8192, 1));
            store.Prepare(1);
        }
        RollbackStore.Detach(dir.Path); // a primary's image, written directly
        Assert.Null(RollbackStore.ReadCheckpoints(dir.Path));
        using (var image = VolumeImage.Open(Path.Combine(dir.Path, RollbackStore.ImageFileName), descriptor.SizeBytes))
            image.Write(4096, Filled(4096, 7)); // checkpoint 5's last write, say
        var atFive = File.ReadAllBytes(Path.Combine(dir.Path, RollbackStore.ImageFileName));

        using (var store = RollbackStore.AttachAt(dir.Path, descriptor, 5))
        {
            Assert.Equal((5L, 5L, 5L), (store.CommittedEpoch, store.PreparedEpoch, store.SyncedFrom));
            store.Write(6, 0, Filled(8192, 6));
            store.Prepare(6);
            store.Write(7, 4096, Filled(4096, 8)); // never prepared
        }
        Assert.Equal((5L, 6L), RollbackStore.ReadCheckpoints(dir.Path));
        using (var recovered = RollbackStore.Recover(dir.Path))
        {
            Assert.Throws<ResyncIncompleteException>(() => recovered.RollbackTo(4)); // before the attach: not held
            recovered.RollbackTo(5);
            RandomOperations.AssertImage(recovered, atFive, "rolled back to the checkpoint it was attached at");
        }
        // A damaged state file vouches for nothing, as recovery would refuse it.
        File.WriteAllBytes(Path.Combine(dir.Path, StoreStateFile.FileName), new byte[2 * StoreStateFile.SlotSize]);
        Assert.Null(RollbackStore.ReadCheckpoints(dir.Path));
        // And there is nothing to attach to without an image of this volume.
        Assert.Throws<StoreMetadataCorruptException>(() => RollbackStore.AttachAt(dir.Path, VolumeDescriptor.New(1 << 20), 5));
    }

    [Fact]
    public void Opening_for_resync_with_another_volume_starts_from_a_zero_image()
    {
        using var dir = new TempDirectory("resync-other");
        var old = VolumeDescriptor.New(1 << 20);
        using (var store = RollbackStore.Create(dir.Path, old))
            store.Write(1, 0, Filled(1 << 20, 1));
        VolumeDescriptor[] others = [old with { VolumeId = Guid.NewGuid() }, old with { SizeBytes = 2 << 20 }, old with { BlockSize = 512 }];
        foreach (var other in others)
        {
            using (var store = RollbackStore.OpenForResync(dir.Path, other))
            {
                RandomOperations.AssertImage(store, new byte[other.SizeBytes], $"after opening for resync as {other}");
                store.Write(1, 0, Filled(4096, 2));
            }
            Assert.Equal(other, VolumeDescriptor.Load(dir.Path));
        }
        // A damaged descriptor counts as another volume.
        File.WriteAllText(Path.Combine(dir.Path, VolumeDescriptor.FileName), "{ not json");
        using var fresh = RollbackStore.OpenForResync(dir.Path, old);
        RandomOperations.AssertImage(fresh, new byte[old.SizeBytes], "after opening for resync over a damaged descriptor");
    }

    [Fact]
    public void A_version_1_state_file_reads_as_synced_from_0_and_an_unknown_version_is_refused()
    {
        using var dir = new TempDirectory("state-v1");
        var path = Path.Combine(dir.Path, StoreStateFile.FileName);
        var bytes = new byte[2 * StoreStateFile.SlotSize];
        WriteVersion1Slot(bytes.AsSpan(0, StoreStateFile.SlotSize), sequence: 2, committed: 4, prepared: 6, lineage: 1, rollbackPoint: 3);
        WriteVersion1Slot(bytes.AsSpan(StoreStateFile.SlotSize), sequence: 1, committed: 4, prepared: 5, lineage: 1, rollbackPoint: 3);
        File.WriteAllBytes(path, bytes);
        using (var state = StoreStateFile.Open(dir.Path))
        {
            Assert.Equal(new StoreState(4, 6, 1, 3, SyncedFrom: 0), state.State);
            state.Write(state.State with { Prepared = 7 }); // written as version 2
        }
        using (var state = StoreStateFile.Open(dir.Path))
            Assert.Equal(new StoreState(4, 7, 1, 3, SyncedFrom: 0), state.State);

        var future = File.ReadAllBytes(path);
        BinaryPrimitives.WriteInt32LittleEndian(future.AsSpan(4), 3);
        File.WriteAllBytes(path, future);
        var e = Assert.Throws<StoreMetadataCorruptException>(() => StoreStateFile.Open(dir.Path));
        Assert.Contains("format version 3", e.Message);
    }

    private static void WriteVersion1Slot(Span<byte> slot, long sequence, long committed, long prepared, long lineage, long rollbackPoint)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(slot, 0x54534D4D);
        BinaryPrimitives.WriteInt32LittleEndian(slot[4..], 1);
        BinaryPrimitives.WriteInt64LittleEndian(slot[8..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(slot[16..], committed);
        BinaryPrimitives.WriteInt64LittleEndian(slot[24..], prepared);
        BinaryPrimitives.WriteInt64LittleEndian(slot[32..], lineage);
        BinaryPrimitives.WriteInt64LittleEndian(slot[40..], rollbackPoint);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[48..], Crc32.HashToUInt32(slot[..48]));
    }

    /// <summary>A store with the old image, some logs left (committed, prepared, open epochs).</summary>
    private static void BuildOldStore(string directory, VolumeDescriptor descriptor, byte[] image, RollbackStoreOptions options, bool cleanStop)
    {
        var store = RollbackStore.Create(directory, descriptor, options);
        var third = (int)(image.Length / 3 / Sector * Sector);
        store.Write(1, 0, image.AsSpan(0, third));
        store.Prepare(1);
        store.Write(2, third, image.AsSpan(third, third));
        store.Prepare(2);
        store.Commit(1);
        store.Write(3, 2L * third, image.AsSpan(2 * third));
        if (cleanStop)
            store.Dispose();
        else
            store.Abandon(); // a crash: queued writes lost, the image is whatever reached the file
    }

    private static void FillRandomRegions(Random random, byte[] image)
    {
        for (var i = random.Next(1, 12); i > 0; i--)
            RandomWrite(random, image, out _, out _);
    }

    /// <summary>A random sector-aligned range of random (sometimes zero) bytes written into <paramref name="image"/>.</summary>
    private static void RandomWrite(Random random, byte[] image, out long offset, out int length)
    {
        length = Math.Min(random.Next(1, 257) * Sector, image.Length);
        offset = (long)random.Next((image.Length - length) / Sector + 1) * Sector;
        var span = image.AsSpan((int)offset, length);
        if (random.Next(6) == 0)
            span.Clear();
        else
            random.NextBytes(span);
    }

    private static byte[] Filled(int length, byte value)
    {
        var bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        return bytes;
    }
}
