using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using Xunit.Sdk;

namespace McActors.Storage.Tests.Support;

/// <summary>
/// Drives a store and its reference model with one random operation at a time: writes of 512 B to
/// 256 KiB at any sector (overlapping, not block-aligned), epoch closes, prepares, commits, reads
/// and rollbacks, checking the store against the model after every read and rollback.
/// </summary>
public sealed class RandomOperations(Random random, ReferenceVolume model, int volumeSize)
{
    private const int Sector = VolumeDescriptor.SectorSize;
    private const int MaxWriteSectors = 512; // 256 KiB
    private readonly byte[] _data = new byte[MaxWriteSectors * Sector];

    public int Rollbacks { get; private set; }

    /// <summary>The target of a rollback that was started and has not returned (a crash inside it).</summary>
    public long? RollbackInFlight { get; private set; }

    public static VolumeDescriptor RandomVolume(Random random, out RollbackStoreOptions options)
    {
        int[] blockSizes = [512, 4096, 16384, 65536];
        int[] batches = [64 << 10, 256 << 10, 4 << 20];
        options = new RollbackStoreOptions { WriteAheadBatchBytes = batches[random.Next(batches.Length)] };
        return VolumeDescriptor.New(2 << 20, blockSizes[random.Next(blockSizes.Length)]);
    }

    public void Step(RollbackStore store)
    {
        var roll = random.Next(100);
        if (roll < 55)
            Write(store);
        else if (roll < 70)
            model.CloseEpoch();
        else if (roll < 80)
            Prepare(store);
        else if (roll < 88)
            Commit(store);
        else if (roll < 95)
            Rollback(store, random);
        else
            CheckRead(store);
    }

    public void Write(RollbackStore store)
    {
        var sectors = random.Next(1, MaxWriteSectors + 1);
        if (random.Next(4) == 0)
            sectors = random.Next(1, 9); // plenty of sub-block writes
        var length = Math.Min(sectors * Sector, volumeSize);
        var offset = (long)random.Next((volumeSize - length) / Sector + 1) * Sector;
        var data = _data.AsSpan(0, length);
        random.NextBytes(data);
        if (random.Next(8) == 0)
            data.Clear(); // zero writes: the store must not confuse them with holes
        store.Write(model.Epoch, offset, data);
        model.Write(offset, data);
    }

    public void Prepare(RollbackStore store)
    {
        var closed = model.Epoch - 1;
        if (closed <= model.Prepared)
            return;
        var epoch = random.Next((int)model.Prepared + 1, (int)closed + 1);
        store.Prepare(epoch);
        model.Prepare(epoch);
    }

    public void Commit(RollbackStore store)
    {
        if (model.Prepared <= model.Committed)
            return;
        var epoch = random.Next((int)model.Committed + 1, (int)model.Prepared + 1);
        store.Commit(epoch);
        model.Commit(epoch);
    }

    /// <summary>Rolls back to the last committed checkpoint, or (as after a lost Commit) to a prepared one.</summary>
    public void Rollback(RollbackStore store, Random r)
    {
        var target = r.Next(3) == 0 ? r.Next((int)model.Committed, (int)model.Prepared + 1) : model.Committed;
        RollbackTo(store, target);
    }

    public void RollbackTo(RollbackStore store, long target)
    {
        RollbackInFlight = target;
        store.RollbackTo(target);
        RollbackInFlight = null;
        AssertImage(store, model.Checkpoint(target), $"after rollback to checkpoint {target}");
        model.RolledBackTo(target);
        Rollbacks++;
    }

    public void CheckRead(RollbackStore store)
    {
        var length = Math.Min(random.Next(1, MaxWriteSectors + 1) * Sector, volumeSize);
        var offset = (long)random.Next((volumeSize - length) / Sector + 1) * Sector;
        var buffer = new byte[length];
        store.Read(offset, buffer);
        AssertEqual(model.Current.AsSpan((int)offset, length), buffer, offset, store.Descriptor.BlockSize, "read of current image");
    }

    public static void AssertImage(RollbackStore store, byte[] expected, string when)
    {
        var actual = new byte[expected.Length];
        store.Read(0, actual);
        AssertEqual(expected, actual, 0, store.Descriptor.BlockSize, when);
    }

    private static void AssertEqual(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, long baseOffset, int blockSize, string when)
    {
        var diff = expected.CommonPrefixLength(actual);
        if (diff == expected.Length && expected.Length == actual.Length)
            return;
        var at = baseOffset + diff;
        throw new XunitException($"image differs {when}: first difference at byte {at} (block {at / blockSize}), " +
            $"expected 0x{expected[diff]:x2}, found 0x{actual[diff]:x2}");
    }
}
