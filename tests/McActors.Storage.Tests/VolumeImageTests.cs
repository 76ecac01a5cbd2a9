using McActors.Storage.Tests.Support;
using McActors.Storage.Volume;

namespace McActors.Storage.Tests;

public sealed class VolumeImageTests : IDisposable
{
    private readonly TempDirectory _dir = new("image");
    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(100, 512, "not aligned")]
    [InlineData(512, 100, "not aligned")]
    [InlineData(1 << 20, 512, "outside the volume")]
    [InlineData((1 << 20) - 512, 1024, "outside the volume")]
    [InlineData(-512, 512, "outside the volume")]
    public void A_misaligned_or_out_of_range_request_names_offset_length_and_size(long offset, int length, string problem)
    {
        using var image = VolumeImage.Create(_dir.Sub("a.img"), 1 << 20);
        var e = Assert.Throws<VolumeRangeException>(() => image.Write(offset, new byte[length]));
        Assert.Contains(problem, e.Message);
        Assert.Contains($"offset {offset}, length {length}, volume size {1 << 20}", e.Message);
        Assert.Throws<VolumeRangeException>(() => image.Read(offset, new byte[length]));
    }

    [Fact]
    public void Writes_at_any_sector_read_back_and_survive_reopening()
    {
        var path = _dir.Sub("b.img");
        var data = new byte[3 * 512];
        Random.Shared.NextBytes(data);
        using (var image = VolumeImage.Create(path, 1 << 20))
        {
            image.Write(512 * 7, data);
            image.Flush();
        }
        using var reopened = VolumeImage.Open(path, 1 << 20);
        var read = new byte[data.Length];
        reopened.Read(512 * 7, read);
        Assert.Equal(data, read);
        Assert.Throws<StoreMetadataCorruptException>(() => VolumeImage.Open(path, 2 << 20));
    }

    [Fact]
    public void Bad_volume_geometry_is_refused()
    {
        Assert.Throws<ArgumentException>(() => VolumeDescriptor.New(1 << 20, 3000));
        Assert.Throws<ArgumentException>(() => VolumeDescriptor.New((1 << 20) + 512, 4096));
        Assert.Throws<ArgumentException>(() => VolumeDescriptor.New(1 << 20, 2 << 20));
    }
}
