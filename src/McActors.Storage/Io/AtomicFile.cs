namespace McActors.Storage.Io;

/// <summary>Replace a small file so that a crash leaves either the old or the new content, never a mix.</summary>
internal static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var temp = path + ".tmp";
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            RandomAccess.Write(handle, content, 0);
            RandomAccess.FlushToDisk(handle);
        }
        File.Move(temp, path, overwrite: true);
        Durability.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }
}
