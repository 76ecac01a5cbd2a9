using System.Runtime.CompilerServices;
using McActors.Storage.Io;
using McActors.Storage.Volume;
using Microsoft.Win32.SafeHandles;

namespace McActors.Storage.RollbackLogs;

/// <summary>How a scan of a rollback log ended.</summary>
public enum ScanStop
{
    /// <summary>Every byte after the header is a valid record.</summary>
    EndOfFile,
    /// <summary>The file ends in the middle of a record.</summary>
    TornRecord,
    /// <summary>A record fails its magic, flags, block range or checksum check.</summary>
    InvalidRecord,
}

/// <summary>Result of scanning a log: valid records end at <see cref="ValidEnd"/>.</summary>
public readonly record struct ScanOutcome(long ValidEnd, long Records, long FileLength, ScanStop Stop);

/// <summary>One record found by a scan; its data sits in the scan chunk at <see cref="DataOffset"/>.</summary>
internal readonly record struct LogRecordRef(long BlockIndex, bool Zero, int DataOffset);

/// <summary>Receives the records of one chunk; the chunk's memory is valid only during the call.</summary>
internal delegate void LogChunkVisitor(ReadOnlyMemory<byte> chunk, IReadOnlyList<LogRecordRef> records);

/// <summary>
/// The rollback log of one epoch: the old content of every block first overwritten in that epoch.
/// Append-only; <see cref="Sync"/> makes the appended bytes durable and records that fact in the
/// header watermark, after which the image writes those records protect may proceed.
/// </summary>
internal sealed class RollbackLog : IDisposable
{
    private const int ScanChunkBytes = 1 << 20;
    private readonly SafeFileHandle _handle;
    private readonly VolumeDescriptor _volume;
    private readonly byte[] _watermark = new byte[RollbackLogFormat.WatermarkSlotLength];
    private long _watermarkSequence;

    private RollbackLog(string path, SafeFileHandle handle, VolumeDescriptor volume, long epoch, long lineage, long length,
        long durableLength, long watermarkSequence)
    {
        Lineage = lineage;
        Path = path;
        _handle = handle;
        _volume = volume;
        Epoch = epoch;
        Length = length;
        DurableLength = durableLength;
        _watermarkSequence = watermarkSequence;
        Seed = RollbackLogFormat.ChecksumSeed(volume.VolumeId, epoch);
    }

    public string Path { get; }
    public long Epoch { get; }

    /// <summary>The store's rollback count when this log was created; an older one means the log is stale.</summary>
    public long Lineage { get; }
    public ulong Seed { get; }

    /// <summary>End of the valid records: the append position.</summary>
    public long Length { get; private set; }

    /// <summary>Bytes made durable by the last <see cref="Sync"/>.</summary>
    public long DurableLength { get; private set; }

    /// <summary>Blocks stashed in this log: the epoch's first-touch set.</summary>
    public SparseBlockSet Blocks { get; } = new();

    public long Records { get; private set; }

    /// <summary>Creates the log file with its header, durable (file and directory entry) before any record.</summary>
    public static RollbackLog Create(string directory, VolumeDescriptor volume, long epoch, long lineage)
    {
        var path = System.IO.Path.Combine(directory, RollbackLogFormat.FileName(epoch));
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            var header = new byte[RollbackLogFormat.HeaderSize];
            RollbackLogFormat.WriteHeader(header, volume.VolumeId, epoch, volume.BlockSize, lineage);
            RandomAccess.Write(handle, header, 0);
            RandomAccess.FlushToDisk(handle);
            Durability.SyncDirectory(directory);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        return new RollbackLog(path, handle, volume, epoch, lineage, RollbackLogFormat.HeaderSize, RollbackLogFormat.HeaderSize, 1);
    }

    /// <summary>
    /// Opens an existing log read-only for inspection: checks the header against the volume and
    /// returns the log with its watermark; records are not read yet (see <see cref="Scan"/>).
    /// </summary>
    public static RollbackLog Open(string path, VolumeDescriptor volume, long expectedEpoch, bool writable)
    {
        var handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.Read);
        try
        {
            var header = new byte[RollbackLogFormat.HeaderSize];
            var n = PositionalIo.ReadFully(handle, header, 0);
            var (volumeId, epoch, blockSize, lineage) = RollbackLogFormat.ParseHeader(header.AsSpan(0, n), path);
            if (volumeId != volume.VolumeId)
                throw new RollbackLogVolumeMismatchException(path, volume.VolumeId, volumeId);
            if (blockSize != volume.BlockSize)
                throw new RollbackLogBlockSizeMismatchException(path, volume.BlockSize, blockSize);
            if (epoch != expectedEpoch)
                throw new RollbackLogHeaderCorruptException(path, $"header says epoch {epoch}, file name says {expectedEpoch}");
            var watermark = RollbackLogFormat.ReadWatermark(header)
                ?? throw new RollbackLogHeaderCorruptException(path, "both watermark slots are damaged");
            var fileLength = RandomAccess.GetLength(handle);
            return new RollbackLog(path, handle, volume, epoch, lineage, fileLength, watermark.DurableLength, watermark.Sequence);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Appends whole records at the end (not yet durable).</summary>
    public void Append(ReadOnlySpan<byte> records)
    {
        RandomAccess.Write(_handle, records, Length);
        Length += records.Length;
    }

    /// <summary>Counts a record appended through <see cref="Append"/> and marks its block as stashed.</summary>
    public void NoteRecord(long blockIndex)
    {
        Blocks.Add(blockIndex);
        Records++;
    }

    /// <summary>
    /// Makes everything appended durable: writes the new length into the next watermark slot, then
    /// one fsync covers records and watermark together. A crash before it returns leaves either the
    /// old watermark (the image writes waiting on this sync were not issued) or the new one.
    /// </summary>
    public void Sync()
    {
        if (DurableLength == Length)
            return;
        _watermarkSequence++;
        RollbackLogFormat.WriteWatermark(_watermark, Length, _watermarkSequence);
        RandomAccess.Write(_handle, _watermark, RollbackLogFormat.WatermarkSlotOffset(_watermarkSequence));
        RandomAccess.FlushToDisk(_handle);
        DurableLength = Length;
    }

    /// <summary>
    /// Reads every record after the header in order, in chunks, checking each one. Stops at the
    /// first torn or invalid record; the caller decides what that means from the watermark.
    /// </summary>
    // Fully optimised at its first call: a rollback (a failover) or a recovery is the first and often
    // only scan a process runs, and tier-0 code would run the whole of it (about 2x slower here).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ScanOutcome Scan(LogChunkVisitor? visitor)
    {
        var blockSize = _volume.BlockSize;
        var maxRecord = RollbackLogFormat.RecordSize(blockSize, zero: false);
        var buffer = new byte[Math.Max(ScanChunkBytes, 2 * maxRecord)];
        var fileLength = RandomAccess.GetLength(_handle);
        var records = new List<LogRecordRef>();
        long filePos = RollbackLogFormat.HeaderSize; // next byte to read from the file
        long recordPos = RollbackLogFormat.HeaderSize; // file offset of buffer[0]
        int filled = 0;
        long count = 0;
        while (true)
        {
            var n = filePos < fileLength ? PositionalIo.ReadFully(_handle, buffer.AsSpan(filled), filePos) : 0;
            filePos += n;
            filled += n;
            var atEof = filePos >= fileLength || n == 0;
            var cursor = 0;
            records.Clear();
            ScanStop? stop = null;
            while (cursor < filled)
            {
                var size = RollbackLogFormat.TryReadRecord(buffer.AsSpan(cursor, filled - cursor), blockSize, Seed,
                    _volume.BlockCount, out var block, out var zero);
                if (size > 0)
                {
                    records.Add(new LogRecordRef(block, zero, cursor + RollbackLogFormat.RecordHeaderSize));
                    cursor += size;
                    continue;
                }
                if (size < 0)
                    stop = ScanStop.InvalidRecord;
                else if (atEof)
                    stop = ScanStop.TornRecord;
                break;
            }
            if (records.Count > 0)
                visitor?.Invoke(buffer.AsMemory(0, cursor), records);
            count += records.Count;
            recordPos += cursor;
            if (stop is not null || (atEof && cursor == filled))
                return new ScanOutcome(recordPos, count, fileLength, stop ?? ScanStop.EndOfFile);
            // Keep the partial record at the front and read more behind it.
            buffer.AsSpan(cursor, filled - cursor).CopyTo(buffer);
            filled -= cursor;
        }
    }

    /// <summary>Cuts an unsynced torn tail off, so that appends continue after the last valid record.</summary>
    public void TruncateTo(long validEnd)
    {
        RandomAccess.SetLength(_handle, validEnd);
        Length = validEnd;
    }

    /// <summary>Sets the append position and counters after a recovery scan.</summary>
    public void SetRecovered(long validEnd, long records)
    {
        Length = validEnd;
        Records = records;
    }

    public void Dispose() => _handle.Dispose();
}
