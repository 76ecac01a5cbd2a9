using System.Text.Json;
using System.Text.Json.Serialization;
using McActors.Storage.Io;

namespace McActors.Storage.Volume;

/// <summary>
/// What a volume is: its identity, size and tracking block size. Every replica of one volume
/// holds the same descriptor; a rollback log from another volume or block size is refused.
/// </summary>
public sealed record VolumeDescriptor(Guid VolumeId, long SizeBytes, int BlockSize)
{
    public const int SectorSize = 512;
    public const int DefaultBlockSize = 4096;
    public const int MaxBlockSize = 1 << 20;
    public const string FileName = "volume.json";
    private const int FormatVersion = 1;

    public long BlockCount => SizeBytes / BlockSize;

    public static VolumeDescriptor New(long sizeBytes, int blockSize = DefaultBlockSize)
    {
        var d = new VolumeDescriptor(Guid.NewGuid(), sizeBytes, blockSize);
        d.Validate();
        return d;
    }

    public void Validate()
    {
        if (BlockSize < SectorSize || BlockSize > MaxBlockSize || (BlockSize & (BlockSize - 1)) != 0)
            throw new ArgumentException($"block size {BlockSize} B must be a power of two between {SectorSize} B and {MaxBlockSize} B");
        if (SizeBytes <= 0 || SizeBytes % BlockSize != 0)
            throw new ArgumentException($"volume size {SizeBytes} B must be positive and a multiple of the block size {BlockSize} B");
        if (VolumeId == Guid.Empty)
            throw new ArgumentException("volume id must not be empty");
    }

    public void Save(string directory) =>
        AtomicFile.Write(Path.Combine(directory, FileName),
            JsonSerializer.SerializeToUtf8Bytes(new OnDisk(FormatVersion, VolumeId, SizeBytes, BlockSize), JsonOptions));

    public static VolumeDescriptor Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new StoreMetadataCorruptException(path, "volume descriptor is missing");
        OnDisk? d;
        try
        {
            d = JsonSerializer.Deserialize<OnDisk>(File.ReadAllBytes(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new StoreMetadataCorruptException(path, $"volume descriptor is not valid JSON: {e.Message}");
        }
        if (d is null || d.Format != FormatVersion)
            throw new StoreMetadataCorruptException(path, $"volume descriptor has unknown format {d?.Format}");
        var descriptor = new VolumeDescriptor(d.VolumeId, d.SizeBytes, d.BlockSize);
        try
        {
            descriptor.Validate();
        }
        catch (ArgumentException e)
        {
            throw new StoreMetadataCorruptException(path, $"volume descriptor is invalid: {e.Message}");
        }
        return descriptor;
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };

    private sealed record OnDisk(int Format, Guid VolumeId, long SizeBytes, int BlockSize);
}
