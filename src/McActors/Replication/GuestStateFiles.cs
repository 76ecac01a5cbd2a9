using McActors.Storage.Io;

namespace McActors.Replication;

/// <summary>
/// A replica's guest-state files, <c>states/epoch-N.gstate</c> in its data directory: the one place
/// that names them. On a secondary the stream writes a
/// state as it arrives (not durable); Prepare makes it durable (file and directory fsync) before
/// the checkpoint is reported prepared; Commit deletes the states older than the committed one,
/// which is kept: it is what a promotion to primary restores.
/// </summary>
public sealed class GuestStateFiles
{
    public const string DirectoryName = "states";
    private const string Prefix = "epoch-";
    private const string Suffix = ".gstate";

    public GuestStateFiles(string directory)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
    }

    public string Directory { get; }

    /// <summary>The guest-state files of the replica whose data directory this is.</summary>
    public static GuestStateFiles Of(string replicaDirectory) => new(Path.Combine(replicaDirectory, DirectoryName));

    /// <summary>Where checkpoint <paramref name="epoch"/>'s state lives in a replica's data directory (nothing is created).</summary>
    public static string PathIn(string replicaDirectory, long epoch) => Path.Combine(replicaDirectory, DirectoryName, FileName(epoch));

    public string PathOf(long epoch) => Path.Combine(Directory, FileName(epoch));

    private static string FileName(long epoch) => $"{Prefix}{epoch}{Suffix}";

    /// <summary>Writes (or rewrites, after a rewound stream) the state of checkpoint <paramref name="epoch"/>; not durable yet.</summary>
    public void Write(long epoch, ReadOnlySpan<byte> blob)
    {
        using var file = new FileStream(PathOf(epoch), FileMode.Create, FileAccess.Write, FileShare.None);
        file.Write(blob);
    }

    public byte[] Read(long epoch) => File.ReadAllBytes(PathOf(epoch));

    /// <summary>fsyncs the states of these checkpoints, then the directory (so their names survive a power loss too).</summary>
    public void MakeDurable(IEnumerable<long> epochs)
    {
        foreach (var epoch in epochs)
        {
            using var file = new FileStream(PathOf(epoch), FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            file.Flush(flushToDisk: true);
        }
        Durability.SyncDirectory(Directory);
    }

    /// <summary>The checkpoints that have a state file, ascending.</summary>
    public IReadOnlyList<long> Epochs() =>
        [.. System.IO.Directory.EnumerateFiles(Directory, $"{Prefix}*{Suffix}")
            .Select(p => Path.GetFileName(p))
            .Select(n => long.TryParse(n.AsSpan(Prefix.Length, n.Length - Prefix.Length - Suffix.Length), out var e) ? e : -1)
            .Where(e => e >= 0)
            .Order()];

    /// <summary>
    /// Deletes the states of checkpoints after <paramref name="epoch"/> (a rollback to it undid
    /// them; a new generation's checkpoints of the same numbers are different ones); returns how many.
    /// </summary>
    public int DeleteAfter(long epoch)
    {
        var deleted = 0;
        foreach (var undone in Epochs().Where(e => e > epoch))
        {
            File.Delete(PathOf(undone));
            deleted++;
        }
        return deleted;
    }

    /// <summary>Deletes the states of checkpoints before <paramref name="epoch"/>; returns how many.</summary>
    public int DeleteBefore(long epoch)
    {
        var deleted = 0;
        foreach (var old in Epochs().Where(e => e < epoch))
        {
            File.Delete(PathOf(old));
            deleted++;
        }
        return deleted;
    }
}
