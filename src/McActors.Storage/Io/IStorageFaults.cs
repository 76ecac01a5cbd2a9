namespace McActors.Storage.Io;

/// <summary>
/// A hook the rollback store (and the primary's image) calls before each rollback-log append, each
/// image write and each fsync, so tests and fault-injection runs can make the disk fail or slow
/// down. Throwing from <see cref="BeforeWrite"/> looks to the store exactly like a failed pwrite:
/// nothing of that write reaches the file. Throwing from <see cref="BeforeSync"/> looks like a
/// failed fsync, and like Linux's it is reported once: the next fsync of the file succeeds, though
/// what the failed one should have written may not be on disk. Null (the default) costs one null check.
/// </summary>
public interface IStorageFaults
{
    /// <summary>Called on the thread about to write <paramref name="length"/> bytes at <paramref name="offset"/> of <paramref name="path"/>.</summary>
    void BeforeWrite(string path, long offset, int length);

    /// <summary>Called on the thread about to fsync <paramref name="path"/>.</summary>
    void BeforeSync(string path)
    {
    }
}
