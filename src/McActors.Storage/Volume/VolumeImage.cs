using McActors.Storage.Io;
using Microsoft.Win32.SafeHandles;

namespace McActors.Storage.Volume;

/// <summary>
/// A raw image file of fixed size, created sparse. Reads and writes of any 512-byte-aligned range
/// inside it, with positional I/O; <see cref="Flush"/> makes every write so far durable.
/// Not thread-safe for writes that overlap; the owner serialises them.
/// </summary>
public sealed class VolumeImage : IDisposable
{
    private readonly SafeFileHandle _handle;

    private VolumeImage(string path, SafeFileHandle handle, long sizeBytes)
    {
        Path = path;
        _handle = handle;
        SizeBytes = sizeBytes;
    }

    public string Path { get; }
    public long SizeBytes { get; }

    /// <summary>Total bytes handed to the file system by <see cref="Write(long, ReadOnlySpan{byte})"/> (for write-amplification numbers).</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    private long _bytesWritten;

    internal SafeFileHandle Handle => _handle;

    /// <summary>Fault-injection hook called before each write and fsync; set by the rollback store or primary that owns the image.</summary>
    public IStorageFaults? Faults { get; set; }

    /// <summary>Creates a new sparse image; fails if the file exists.</summary>
    public static VolumeImage Create(string path, long sizeBytes)
    {
        if (sizeBytes <= 0 || sizeBytes % VolumeDescriptor.SectorSize != 0)
            throw new ArgumentException($"volume size {sizeBytes} B must be a positive multiple of {VolumeDescriptor.SectorSize} B");
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            RandomAccess.SetLength(handle, sizeBytes); // sparse: no blocks allocated until written
            RandomAccess.FlushToDisk(handle);
            Durability.SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        return new VolumeImage(path, handle, sizeBytes);
    }

    /// <summary>Opens an existing image and checks that it has the expected size.</summary>
    public static VolumeImage Open(string path, long expectedSize, bool writable = true)
    {
        if (!File.Exists(path))
            throw new StoreMetadataCorruptException(path, "volume image is missing");
        var handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.Read);
        var actual = RandomAccess.GetLength(handle);
        if (actual != expectedSize)
        {
            handle.Dispose();
            throw new StoreMetadataCorruptException(path, $"volume image is {actual} B, expected {expectedSize} B");
        }
        return new VolumeImage(path, handle, expectedSize);
    }

    public static void CheckRange(long offset, long length, long volumeSize)
    {
        if (offset % VolumeDescriptor.SectorSize != 0 || length % VolumeDescriptor.SectorSize != 0)
            throw new VolumeRangeException(offset, length, volumeSize, "request is not aligned to 512-byte sectors");
        if (offset < 0 || length < 0 || offset > volumeSize || length > volumeSize - offset)
            throw new VolumeRangeException(offset, length, volumeSize, "request lies outside the volume");
    }

    public void Read(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length, SizeBytes);
        var n = PositionalIo.ReadFully(_handle, buffer, offset);
        if (n != buffer.Length)
            throw new IOException($"short read from {Path}: {n} of {buffer.Length} B at offset {offset}");
    }

    /// <summary>One scattered read (preadv) of consecutive buffers starting at offset.</summary>
    public void Read(long offset, IReadOnlyList<Memory<byte>> buffers)
    {
        long length = 0;
        foreach (var b in buffers)
            length += b.Length;
        CheckRange(offset, length, SizeBytes);
        var n = PositionalIo.ReadFully(_handle, buffers, offset);
        if (n != length)
            throw new IOException($"short read from {Path}: {n} of {length} B at offset {offset}");
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        CheckRange(offset, data.Length, SizeBytes);
        Faults?.BeforeWrite(Path, offset, data.Length);
        RandomAccess.Write(_handle, data, offset);
        Interlocked.Add(ref _bytesWritten, data.Length);
    }

    /// <summary>One gathered write (pwritev) of consecutive buffers starting at offset.</summary>
    public void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers)
    {
        long length = 0;
        foreach (var b in buffers)
            length += b.Length;
        CheckRange(offset, length, SizeBytes);
        Faults?.BeforeWrite(Path, offset, checked((int)length));
        RandomAccess.Write(_handle, buffers, offset);
        Interlocked.Add(ref _bytesWritten, length);
    }

    /// <summary>Starts writing dirty pages back in the background, so that the next <see cref="Flush"/> has less to wait for.</summary>
    public void StartWriteback() => Durability.StartWriteback(_handle);

    /// <summary>Starts writing the dirty pages of one range back in the background (see <see cref="StartWriteback()"/>).</summary>
    public void StartWriteback(long offset, long length) => Durability.StartWriteback(_handle, offset, length);

    /// <summary>
    /// Makes every write so far durable (fsync). Safe beside writes on other threads. A failure is
    /// sticky: Linux reports a failed writeback to one fsync only and the next succeeds without the
    /// lost pages, so every later call throws it again (one caller may have fsynced in the background
    /// while another must not take a later success for durability).
    /// </summary>
    public void Flush()
    {
        lock (_syncLock)
        {
            if (_syncFailure is { } earlier)
                throw new IOException($"an earlier fsync of {Path} failed ({earlier.Message}); its writes may be lost", earlier);
            try
            {
                Faults?.BeforeSync(Path);
                RandomAccess.FlushToDisk(_handle);
            }
            catch (IOException e)
            {
                _syncFailure = e;
                throw;
            }
        }
    }

    private readonly Lock _syncLock = new();
    private IOException? _syncFailure;

    public void Dispose() => _handle.Dispose();
}
