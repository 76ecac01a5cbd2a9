namespace McActors.Storage.Volume;

/// <summary>A read or write outside the volume, or not aligned to 512-byte sectors.</summary>
public sealed class VolumeRangeException(long offset, long length, long volumeSize, string problem)
    : ArgumentException($"{problem}: offset {offset}, length {length}, volume size {volumeSize}")
{
    public long Offset { get; } = offset;
    public long Length { get; } = length;
    public long VolumeSize { get; } = volumeSize;
}
