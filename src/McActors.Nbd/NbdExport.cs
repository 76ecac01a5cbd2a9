namespace McActors.Nbd;

/// <summary>
/// What an NBD connection reads and writes: the volume, as the primary serves it. Offsets and
/// lengths reach it already checked against <see cref="SizeBytes"/> and the block size. A failed
/// operation throws an <see cref="NbdErrorException"/> carrying the NBD error to answer with.
/// </summary>
public interface INbdExport
{
    long SizeBytes { get; }

    /// <summary>Cancelled when the export goes away (the primary role stopped): its connections close.</summary>
    CancellationToken Closed { get; }

    /// <summary>True if a FLUSH on one connection covers writes completed on every connection (NBD_FLAG_CAN_MULTI_CONN).</summary>
    bool FlushCoversAllConnections { get; }

    ValueTask<byte[]> ReadAsync(long offset, int length);

    /// <summary>
    /// Completes when the write is done as the export promises it; with <paramref name="fua"/>, only once
    /// it is durable. <see cref="ActorNbdExport"/> completes every write only once committed.
    /// </summary>
    ValueTask WriteAsync(long offset, byte[] data, bool fua);

    ValueTask WriteZeroesAsync(long offset, long length, bool fua);

    /// <summary>A hint: the range's content may be discarded (reads of it may then return anything).</summary>
    ValueTask TrimAsync(long offset, long length, bool fua);

    /// <summary>Completes once every write completed before it is durable (here: covered by a committed checkpoint).</summary>
    ValueTask FlushAsync();
}

/// <summary>An operation failed with NBD error <see cref="Error"/> (an errno value of <see cref="NbdProtocol"/>).</summary>
public sealed class NbdErrorException(uint error, string message) : Exception(message)
{
    public uint Error { get; } = error;
}

/// <summary>Where a connection finds its export by name, or learns why there is none here.</summary>
public interface INbdExportSource
{
    /// <summary>The names this server lists (NBD_OPT_LIST).</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>The export called <paramref name="name"/> ("" is the default), or null and the NBD error reply and message to refuse with.</summary>
    INbdExport? Find(string name, out uint refusal, out string message);
}
