using McActors.Storage.Io;
using McActors.Storage.RollbackLogs;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>
/// File operations on a store directory that no open store owns (resync, attach, detach, recovery):
/// removing state and logs in a crash-safe order, judging a kept image, retiring stale logs.
/// </summary>
internal static class StoreDirectory
{
    /// <summary>Suffix of a retired log waiting for the background deleter.</summary>
    public const string DroppedSuffix = ".dropped";

    /// <summary>
    /// The state file first, durably (from then on the logs can never be applied: Recover refuses),
    /// then every log and dropped log, durably.
    /// </summary>
    public static void RemoveStateAndLogs(string directory)
    {
        File.Delete(Path.Combine(directory, StoreStateFile.FileName));
        Durability.SyncDirectory(directory);
        var logDirectory = Path.Combine(directory, RollbackStore.LogDirectoryName);
        System.IO.Directory.CreateDirectory(logDirectory);
        var removed = false;
        foreach (var path in System.IO.Directory.EnumerateFiles(logDirectory))
        {
            var name = Path.GetFileName(path);
            if (!name.EndsWith(DroppedSuffix, StringComparison.Ordinal) && !RollbackLogFormat.TryParseFileName(name, out _))
                continue; // not ours; left alone, as Recover does
            File.Delete(path);
            removed = true;
        }
        if (removed)
            Durability.SyncDirectory(logDirectory);
    }

    /// <summary>True if the directory holds an image of exactly this volume (same id, size and block size).</summary>
    public static bool HoldsVolume(string directory, VolumeDescriptor descriptor, string imagePath)
    {
        if (!File.Exists(Path.Combine(directory, VolumeDescriptor.FileName)) || !File.Exists(imagePath))
            return false;
        try
        {
            return VolumeDescriptor.Load(directory) == descriptor && new FileInfo(imagePath).Length == descriptor.SizeBytes;
        }
        catch (CannotVouchException)
        {
            return false; // a damaged descriptor: start from a new image
        }
    }

    /// <summary>
    /// Renames stale logs out of the way (the next epoch's log may need the name at once) and makes
    /// the renames durable; returns the new names, for the background deleter.
    /// </summary>
    public static List<string> RetireLogs(string logDirectory, IEnumerable<string> paths)
    {
        var retired = new List<string>();
        foreach (var path in paths)
        {
            var target = $"{path}.{Guid.NewGuid():N}{DroppedSuffix}";
            File.Move(path, target);
            retired.Add(target);
        }
        if (retired.Count > 0)
            Durability.SyncDirectory(logDirectory);
        return retired;
    }
}
