using McActors.Storage.Rollback;
using McActors.Storage.RollbackLogs;
using McActors.Storage.Tests.Support;
using McActors.Storage.Volume;

namespace McActors.Storage.Tests;

/// <summary>
/// Damaged or foreign files on disk: each kind gives its own exception naming the file, and the
/// refused call leaves every file as it was.
/// </summary>
public sealed class RollbackLogDamageTests : IDisposable
{
    private const int BlockSize = 4096;
    private readonly TempDirectory _dir = new("damage");
    private readonly VolumeDescriptor _volume = VolumeDescriptor.New(1 << 20, BlockSize);

    public void Dispose() => _dir.Dispose();

    private string StoreDir => _dir.Sub("store");
    private string LogPath(long epoch) => Path.Combine(StoreDir, RollbackStore.LogDirectoryName, RollbackLogFormat.FileName(epoch));

    /// <summary>A store with checkpoint 1 committed and epochs 2 and 3 written, prepared up to 2, then stopped.</summary>
    private void MakeStore(VolumeDescriptor? volume = null, string? dir = null)
    {
        using var store = RollbackStore.Create(dir ?? StoreDir, volume ?? _volume);
        var data = new byte[3 * BlockSize];
        Random.Shared.NextBytes(data);
        store.Write(1, 0, data);
        store.Prepare(1);
        store.Commit(1);
        Random.Shared.NextBytes(data);
        store.Write(2, 2048, data); // not block-aligned: four blocks stashed
        store.Prepare(2);
        store.Write(3, 8192, data.AsSpan(0, 512));
    }

    private T AssertRecoverRefuses<T>() where T : CannotVouchException
    {
        var before = StoreFiles.Fingerprint(StoreDir);
        var e = Assert.Throws<T>(() => RollbackStore.Recover(StoreDir));
        Assert.Equal(before, StoreFiles.Fingerprint(StoreDir));
        return e;
    }

    [Fact]
    public void A_log_with_a_bad_magic_is_refused_as_a_corrupt_header()
    {
        MakeStore();
        StoreFiles.FlipByte(LogPath(2), 3);
        var e = AssertRecoverRefuses<RollbackLogHeaderCorruptException>();
        Assert.Contains("bad magic", e.Message);
        Assert.Equal(LogPath(2), e.Path);
    }

    [Fact]
    public void A_log_whose_header_fields_changed_fails_the_header_checksum()
    {
        MakeStore();
        StoreFiles.FlipByte(LogPath(2), 33); // inside the epoch field
        var e = AssertRecoverRefuses<RollbackLogHeaderCorruptException>();
        Assert.Contains("checksum", e.Message);
    }

    [Fact]
    public void A_log_shorter_than_its_header_is_a_corrupt_header()
    {
        MakeStore();
        using (var s = new FileStream(LogPath(3), FileMode.Open)) s.SetLength(100);
        AssertRecoverRefuses<RollbackLogHeaderCorruptException>();
    }

    [Fact]
    public void A_log_of_another_volume_is_refused()
    {
        MakeStore();
        var other = _dir.Sub("other");
        MakeStore(VolumeDescriptor.New(_volume.SizeBytes, BlockSize), other);
        File.Copy(Path.Combine(other, RollbackStore.LogDirectoryName, RollbackLogFormat.FileName(3)), LogPath(3), overwrite: true);
        var e = AssertRecoverRefuses<RollbackLogVolumeMismatchException>();
        Assert.Equal(_volume.VolumeId, e.Expected);
        Assert.NotEqual(_volume.VolumeId, e.Actual);
    }

    [Fact]
    public void A_log_written_with_another_block_size_is_refused()
    {
        MakeStore();
        var other = _dir.Sub("other");
        MakeStore(_volume with { BlockSize = 65536 }, other);
        File.Copy(Path.Combine(other, RollbackStore.LogDirectoryName, RollbackLogFormat.FileName(3)), LogPath(3), overwrite: true);
        var e = AssertRecoverRefuses<RollbackLogBlockSizeMismatchException>();
        Assert.Equal((BlockSize, 65536), (e.Expected, e.Actual));
    }

    [Fact]
    public void A_durable_record_that_fails_its_checksum_is_refused()
    {
        MakeStore();
        // Second record's data, well inside the part made durable by Prepare(2).
        var offset = RollbackLogFormat.HeaderSize + RollbackLogFormat.RecordSize(BlockSize, false) + 100;
        StoreFiles.FlipByte(LogPath(2), offset);
        var e = AssertRecoverRefuses<RollbackLogChecksumException>();
        Assert.Equal(RollbackLogFormat.HeaderSize + RollbackLogFormat.RecordSize(BlockSize, false), e.RecordOffset);
    }

    [Fact]
    public void A_log_cut_below_its_durable_length_is_refused()
    {
        MakeStore();
        var length = new FileInfo(LogPath(2)).Length;
        using (var s = new FileStream(LogPath(2), FileMode.Open)) s.SetLength(length - 10);
        var e = AssertRecoverRefuses<RollbackLogTruncatedException>();
        Assert.Equal(length, e.DurableLength);
    }

    [Fact]
    public void A_damaged_store_state_or_descriptor_or_image_is_refused()
    {
        MakeStore();
        var state = Path.Combine(StoreDir, "store.state");
        var saved = File.ReadAllBytes(state);
        StoreFiles.FlipByte(state, 20);
        StoreFiles.FlipByte(state, StoreStateFile.SlotSize + 20);
        Assert.Contains("no valid slot", AssertRecoverRefuses<StoreMetadataCorruptException>().Message);
        File.WriteAllBytes(state, saved);

        var descriptor = Path.Combine(StoreDir, VolumeDescriptor.FileName);
        var json = File.ReadAllText(descriptor);
        File.WriteAllText(descriptor, "{ not json");
        Assert.Contains("not valid JSON", AssertRecoverRefuses<StoreMetadataCorruptException>().Message);
        File.WriteAllText(descriptor, json);

        using (var s = new FileStream(Path.Combine(StoreDir, RollbackStore.ImageFileName), FileMode.Open)) s.SetLength(4096);
        Assert.Contains("expected 1048576 B", AssertRecoverRefuses<StoreMetadataCorruptException>().Message);
    }

    [Fact]
    public void A_live_store_checks_every_log_before_a_rollback_writes_anything()
    {
        using var store = RollbackStore.Create(StoreDir, _volume);
        var data = new byte[8 * BlockSize];
        for (var epoch = 1; epoch <= 3; epoch++)
        {
            data.AsSpan().Fill((byte)epoch);
            store.Write(epoch, 0, data);
        }
        store.Prepare(3);
        // Damage the oldest log: the newest would be applied first if the check came late.
        StoreFiles.FlipByte(LogPath(2), RollbackLogFormat.HeaderSize + 30);
        var image = Path.Combine(StoreDir, RollbackStore.ImageFileName);
        var before = File.ReadAllBytes(image);
        Assert.Throws<RollbackLogChecksumException>(() => store.RollbackTo(1));
        Assert.Equal(before, File.ReadAllBytes(image));
    }
}
