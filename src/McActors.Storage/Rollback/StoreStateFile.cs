using System.Buffers.Binary;
using System.IO.Hashing;
using McActors.Storage.Io;
using Microsoft.Win32.SafeHandles;

namespace McActors.Storage.Rollback;

/// <summary>
/// The store's durable numbers: the last committed and the last prepared checkpoint; the lineage,
/// raised by every rollback, and that rollback's checkpoint. A log of an older lineage for an epoch
/// after that checkpoint holds undo data of epochs already undone: it is stale.
/// <see cref="SyncedFrom"/>: the first checkpoint whose image this store holds whole (0: always in
/// sync; <see cref="ResyncInProgress"/>: a resync has not finished, no checkpoint can be vouched for).
/// </summary>
public readonly record struct StoreState(long Committed, long Prepared, long Lineage, long RollbackPoint, long SyncedFrom = 0)
{
    public const long ResyncInProgress = long.MaxValue;

    public bool IsStale(long logLineage, long logEpoch) => logLineage < Lineage && logEpoch > RollbackPoint;
}

/// <summary>
/// store.state: two 4 KiB slots written alternately, each
/// <c>magic u32 | version u32 | sequence i64 | committed i64 | prepared i64 | lineage i64 | rollback point i64 | synced from i64 | CRC-32 of [0, 56)</c>.
/// A torn write can damage only the slot being written, so the other one still holds the
/// previous state. Writes are cheap pwrites; <see cref="Sync"/> makes them durable.
/// Version 1 slots (no synced-from field, CRC-32 of [0, 48)) are still read, as synced from 0:
/// such a store was created in sync and never resynced. Only version 2 is written.
/// </summary>
internal sealed class StoreStateFile : IDisposable
{
    public const string FileName = "store.state";
    private const uint Magic = 0x54534D4D; // "MMST"
    private const int Version = 2;
    private const int Version1PayloadLength = 48;
    // One page per slot: the background deleter fsyncs the file while commits go on writing the
    // other slot, and a write into a page under writeback would wait for it (stable pages).
    public const int SlotSize = 4096;
    private const int PayloadLength = 56;
    private readonly SafeFileHandle _handle;
    private readonly byte[] _slot = new byte[SlotSize];
    private long _sequence;

    private StoreStateFile(string path, SafeFileHandle handle, long sequence, StoreState state)
    {
        Path = path;
        _handle = handle;
        _sequence = sequence;
        State = state;
    }

    public string Path { get; }
    public StoreState State { get; private set; }

    public static StoreStateFile Create(string directory, StoreState initial)
    {
        var path = System.IO.Path.Combine(directory, FileName);
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        var file = new StoreStateFile(path, handle, 0, initial);
        file.Write(initial);
        file.Sync();
        Durability.SyncDirectory(directory);
        return file;
    }

    public static StoreStateFile Open(string directory)
    {
        var path = System.IO.Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new StoreMetadataCorruptException(path, "store state file is missing");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        var bytes = new byte[2 * SlotSize];
        var n = PositionalIo.ReadFully(handle, bytes, 0);
        (long Sequence, StoreState State)? best = null;
        int? unknownVersion = null;
        for (var offset = 0; offset + Version1PayloadLength + 4 <= n; offset += SlotSize)
        {
            var slot = bytes.AsSpan(offset, Math.Min(SlotSize, n - offset));
            if (BinaryPrimitives.ReadUInt32LittleEndian(slot) != Magic)
                continue;
            var version = BinaryPrimitives.ReadInt32LittleEndian(slot[4..]);
            var payload = version switch { 1 => Version1PayloadLength, Version => PayloadLength, _ => -1 };
            if (payload < 0 || payload + 4 > slot.Length
                || BinaryPrimitives.ReadUInt32LittleEndian(slot[payload..]) != Crc32.HashToUInt32(slot[..payload]))
            {
                if (payload < 0)
                    unknownVersion = version;
                continue;
            }
            var sequence = BinaryPrimitives.ReadInt64LittleEndian(slot[8..]);
            var state = new StoreState(BinaryPrimitives.ReadInt64LittleEndian(slot[16..]),
                BinaryPrimitives.ReadInt64LittleEndian(slot[24..]), BinaryPrimitives.ReadInt64LittleEndian(slot[32..]),
                BinaryPrimitives.ReadInt64LittleEndian(slot[40..]),
                version == 1 ? 0 : BinaryPrimitives.ReadInt64LittleEndian(slot[48..]));
            if (best is null || sequence > best.Value.Sequence)
                best = (sequence, state);
        }
        // A slot of an unknown (newer) version may hold the newest state: never fall back past it.
        if (best is null || unknownVersion is not null)
        {
            handle.Dispose();
            throw new StoreMetadataCorruptException(path, unknownVersion is { } v
                ? $"store state file has format version {v}; this build reads versions 1 and {Version}"
                : "store state file has no valid slot");
        }
        return new StoreStateFile(path, handle, best.Value.Sequence, best.Value.State);
    }

    /// <summary>Writes the next slot (not yet durable).</summary>
    public void Write(StoreState state)
    {
        _sequence++;
        var slot = _slot.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(slot, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(slot[4..], Version);
        BinaryPrimitives.WriteInt64LittleEndian(slot[8..], _sequence);
        BinaryPrimitives.WriteInt64LittleEndian(slot[16..], state.Committed);
        BinaryPrimitives.WriteInt64LittleEndian(slot[24..], state.Prepared);
        BinaryPrimitives.WriteInt64LittleEndian(slot[32..], state.Lineage);
        BinaryPrimitives.WriteInt64LittleEndian(slot[40..], state.RollbackPoint);
        BinaryPrimitives.WriteInt64LittleEndian(slot[48..], state.SyncedFrom);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[PayloadLength..], Crc32.HashToUInt32(slot[..PayloadLength]));
        RandomAccess.Write(_handle, _slot, (_sequence & 1) * SlotSize);
        State = state;
    }

    /// <summary>fsync; safe to call from another thread than <see cref="Write"/> (the background deleter does).</summary>
    public void Sync()
    {
        Faults?.BeforeSync(Path);
        RandomAccess.FlushToDisk(_handle);
    }

    /// <summary>Fault-injection hook called before each fsync; set by the rollback store.</summary>
    internal IStorageFaults? Faults { get; set; }

    public void Dispose() => _handle.Dispose();
}
