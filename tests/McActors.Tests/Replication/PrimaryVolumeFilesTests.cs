using McActors.Protocol;
using McActors.Replication;
using McActors.Storage;
using McActors.Storage.Volume;

namespace McActors.Tests.Replication;

public sealed class PrimaryVolumeFilesTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"mcactors-primary-files-{Guid.NewGuid():N}");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), 1 << 20, 4096);

    public void Dispose()
    {
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void A_missing_image_is_created_sparse_with_its_descriptor_and_reopened_with_its_content()
    {
        using (var image = PrimaryVolumeFiles.OpenOrCreate(_directory, _volume))
        {
            Assert.Equal(_volume.SizeBytes, image.SizeBytes);
            image.Write(4096, new byte[] { 1, 2, 3 }.Concat(new byte[509]).ToArray());
        }
        Assert.Equal(new VolumeDescriptor(_volume.VolumeId, _volume.SizeBytes, _volume.BlockSize), VolumeDescriptor.Load(PrimaryVolumeFiles.ImageDirectory(_directory)));
        Assert.Equal(Path.Combine(_directory, "store", "volume.img"), PrimaryVolumeFiles.ImagePath(_directory)); // one layout for both roles

        using var reopened = PrimaryVolumeFiles.OpenOrCreate(_directory, _volume);
        var sector = new byte[512];
        reopened.Read(4096, sector);
        Assert.Equal([1, 2, 3], sector[..3]);
    }

    [Fact]
    public void An_existing_volume_of_another_id_or_size_is_refused()
    {
        PrimaryVolumeFiles.OpenOrCreate(_directory, _volume).Dispose();
        var otherId = Assert.Throws<StoreMetadataCorruptException>(() => PrimaryVolumeFiles.OpenOrCreate(_directory, _volume with { VolumeId = Guid.NewGuid() }));
        Assert.Contains(_volume.VolumeId.ToString(), otherId.Message);
        Assert.Throws<StoreMetadataCorruptException>(() => PrimaryVolumeFiles.OpenOrCreate(_directory, _volume with { SizeBytes = 2 << 20 }));
    }

    [Fact]
    public void A_saved_state_is_loaded_back_and_a_missing_one_is_null()
    {
        Assert.Null(PrimaryVolumeFiles.LoadState(_directory, 3));
        var path = PrimaryVolumeFiles.SaveState(_directory, 3, [4, 5, 6]);
        Assert.EndsWith(Path.Combine("states", "epoch-3.gstate"), path);
        Assert.Equal([4, 5, 6], PrimaryVolumeFiles.LoadState(_directory, 3));
        PrimaryVolumeFiles.SaveState(_directory, 3, [7]);
        Assert.Equal([7], PrimaryVolumeFiles.LoadState(_directory, 3));
        Assert.False(File.Exists(path + ".tmp"));
    }
}
