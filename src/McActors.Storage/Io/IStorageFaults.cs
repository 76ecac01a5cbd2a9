namespace McActors.Storage.Io;

/// <summary>
/// A hook the rollback store calls before each rollback-log append and each image write, so
/// tests and fault-injection runs can make the disk fail or slow down. Throwing from
/// <see cref="BeforeWrite"/> looks to the store exactly like a failed pwrite: nothing of that
/// write reaches the file. Null (the default) costs one null check per write.
/// </summary>
public interface IStorageFaults
{
    /// <summary>Called on the thread about to write <paramref name="length"/> bytes at <paramref name="offset"/> of <paramref name="path"/>.</summary>
    void BeforeWrite(string path, long offset, int length);
}
