using McActors.Storage.RollbackLogs;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>
/// What <see cref="RollbackStore.Recover"/> finds in a log directory, checked before any file is
/// touched: the uncommitted logs of the store's lineage (torn tails cut, first-touch sets rebuilt),
/// and the files to delete (committed, dropped, or made stale by a finished rollback). Owns the open
/// logs until the store takes them.
/// </summary>
internal sealed class RecoveredLogs
{
    private RecoveredLogs(List<RollbackLog> logs, long records, long torn, List<string> toDelete)
    {
        Logs = logs;
        Records = records;
        Torn = torn;
        ToDelete = toDelete;
    }

    /// <summary>The logs kept, in file-name order.</summary>
    public IReadOnlyList<RollbackLog> Logs { get; }

    public long Records { get; }

    /// <summary>Torn bytes cut off past the durable lengths.</summary>
    public long Torn { get; }

    public IReadOnlyList<string> ToDelete { get; }

    /// <summary>Scans every log of <paramref name="logDirectory"/>; damage throws a <see cref="CannotVouchException"/> with every file as it was.</summary>
    public static RecoveredLogs Open(string logDirectory, VolumeDescriptor descriptor, StoreState state)
    {
        var opened = new List<(RollbackLog Log, ScanOutcome Scan)>();
        try
        {
            var toDelete = new List<string>();
            var stale = new List<string>();
            long records = 0, torn = 0;
            foreach (var path in System.IO.Directory.EnumerateFiles(logDirectory).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(path);
                if (name.EndsWith(StoreDirectory.DroppedSuffix, StringComparison.Ordinal))
                {
                    toDelete.Add(path);
                    continue;
                }
                if (!RollbackLogFormat.TryParseFileName(name, out var epoch))
                    continue; // not ours; left alone
                if (epoch <= state.Committed)
                {
                    toDelete.Add(path); // committed: its delete was queued, or done but not yet durable
                    continue;
                }
                var log = RollbackLog.Open(path, descriptor, epoch, writable: true);
                if (log.Lineage > state.Lineage)
                    throw new RollbackLogHeaderCorruptException(path,
                        $"log of lineage {log.Lineage} is newer than the store's lineage {state.Lineage}");
                if (state.IsStale(log.Lineage, epoch))
                {
                    log.Dispose();
                    stale.Add(path); // undo data of epochs that a finished rollback already undid
                    continue;
                }
                opened.Add((log, default));
                var scan = log.Scan((_, refs) =>
                {
                    foreach (var r in refs)
                        log.NoteRecord(r.BlockIndex);
                });
                torn += LogScans.TornBytes(log, scan);
                records += scan.Records;
                opened[^1] = (log, scan);
            }
            // Everything checked: only now touch the files.
            toDelete.AddRange(StoreDirectory.RetireLogs(logDirectory, stale));
            foreach (var (log, scan) in opened)
            {
                if (scan.ValidEnd < scan.FileLength)
                    log.TruncateTo(scan.ValidEnd);
                else
                    log.SetRecovered(scan.ValidEnd, log.Records);
            }
            return new RecoveredLogs([.. opened.Select(o => o.Log)], records, torn, toDelete);
        }
        catch
        {
            foreach (var (log, _) in opened)
                log.Dispose();
            throw;
        }
    }

    public void CloseAll()
    {
        foreach (var log in Logs)
            log.Dispose();
    }
}

/// <summary>How recovery and rollback judge a log's scan.</summary>
internal static class LogScans
{
    /// <summary>
    /// Judges a scan against the log's watermark. Returns the torn bytes past the durable length
    /// (a crash mid-append, safe to cut); throws if records below it are damaged or missing.
    /// </summary>
    public static long TornBytes(RollbackLog log, ScanOutcome scan)
    {
        if (scan.ValidEnd >= log.DurableLength)
            return scan.FileLength - scan.ValidEnd;
        if (scan.Stop == ScanStop.InvalidRecord)
            throw new RollbackLogChecksumException(log.Path, scan.ValidEnd,
                $"bad magic, flags, block index or checksum below the durable length {log.DurableLength}");
        throw new RollbackLogTruncatedException(log.Path, scan.FileLength, log.DurableLength);
    }
}
