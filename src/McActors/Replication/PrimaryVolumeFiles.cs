using McActors.Protocol;
using McActors.Storage;
using McActors.Storage.Io;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// The primary's files in its data directory: the image <c>store/volume.img</c> and its descriptor
/// <c>store/volume.json</c> (the same place as a secondary's store: a promoted secondary goes on
/// with its rolled-back image, and a demoted primary's image can be resynced in place), and the
/// guest states under <c>states/</c>.
/// </summary>
public static class PrimaryVolumeFiles
{
    public const string ImageFileName = RollbackStore.ImageFileName; // one layout for both roles

    public static string ImageDirectory(string directory) => Path.Combine(directory, SecondaryActor.StoreName);

    public static string ImagePath(string directory) => Path.Combine(ImageDirectory(directory), ImageFileName);

    public static string StatePath(string directory, long epoch) => GuestStateFiles.PathIn(directory, epoch);

    /// <summary>
    /// Opens the image of <paramref name="volume"/>, creating it (sparse) with its descriptor if
    /// the directory has none; an existing one must be the same volume of the same size.
    /// <paramref name="faults"/> (a fault injector, <c>McActorsSettings.StoreFaults</c>) sees every write and fsync of the image.
    /// </summary>
    public static VolumeImage OpenOrCreate(string dataDirectory, VolumeSpec volume, IStorageFaults? faults = null)
    {
        var image = OpenOrCreateImage(dataDirectory, volume);
        image.Faults = faults;
        return image;
    }

    private static VolumeImage OpenOrCreateImage(string dataDirectory, VolumeSpec volume)
    {
        var directory = ImageDirectory(dataDirectory);
        Directory.CreateDirectory(directory);
        var image = ImagePath(dataDirectory);
        var descriptorPath = Path.Combine(directory, VolumeDescriptor.FileName);
        if (!File.Exists(descriptorPath))
        {
            var descriptor = new VolumeDescriptor(volume.VolumeId, volume.SizeBytes, volume.BlockSize);
            descriptor.Validate();
            // An image without a descriptor is a leftover of a create that crashed before the
            // descriptor was saved: nothing vouches for it, start it afresh.
            if (File.Exists(image))
                File.Delete(image);
            var created = VolumeImage.Create(image, volume.SizeBytes);
            try
            {
                descriptor.Save(directory);
            }
            catch
            {
                created.Dispose();
                throw;
            }
            return created;
        }
        var existing = VolumeDescriptor.Load(directory);
        // A store directory (a promoted secondary's, or a resynced one) becomes a primary's image:
        // its logs and state no longer describe the image once it is written directly.
        RollbackStore.Detach(directory);
        if (existing.VolumeId != volume.VolumeId || existing.SizeBytes != volume.SizeBytes || existing.BlockSize != volume.BlockSize)
            throw new StoreMetadataCorruptException(descriptorPath,
                $"holds volume {existing.VolumeId} ({existing.SizeBytes} B, blocks of {existing.BlockSize} B), " +
                $"assigned volume {volume.VolumeId} ({volume.SizeBytes} B, blocks of {volume.BlockSize} B)");
        return VolumeImage.Open(image, volume.SizeBytes);
    }

    /// <summary>Writes a checkpoint's guest state durably (temp file, fsync, rename) for offline verification.</summary>
    public static string SaveState(string directory, long epoch, byte[] state)
    {
        var path = StatePath(directory, epoch);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(state);
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        return path;
    }

    /// <summary>The saved guest state of <paramref name="epoch"/>, or null if there is none.</summary>
    public static byte[]? LoadState(string directory, long epoch)
    {
        var path = StatePath(directory, epoch);
        return File.Exists(path) ? File.ReadAllBytes(path) : null;
    }
}
