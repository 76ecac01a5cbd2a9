using McActors.Storage.Io;

namespace McActors.Storage.Rollback;

/// <summary>Tuning of a <see cref="RollbackStore"/>; the node fills it from hocon/storage.conf.</summary>
public sealed record RollbackStoreOptions
{
    /// <summary>
    /// Write-ahead batch: undo records and the image writes they protect are gathered up to this
    /// many bytes, then the logs get one fsync and the image writes go out. Larger batches mean
    /// fewer fsyncs (faster) and more memory (this much, twice: records + queued writes).
    /// </summary>
    public int WriteAheadBatchBytes { get; init; } = 4 << 20;

    /// <summary>
    /// Image bytes written between two starts of background writeback (0 = never). Earlier
    /// writeback shortens Prepare's fsync (commit latency under load) but writes a block rewritten
    /// within an epoch more than once (write amplification).
    /// </summary>
    public long WritebackBytes { get; init; } = 32 << 20;

    /// <summary>
    /// Called before every rollback-log append and image write (fault injection in tests and chaos
    /// runs); null in production.
    /// </summary>
    public IStorageFaults? Faults { get; init; }

    public void Validate()
    {
        if (WriteAheadBatchBytes < 64 << 10 || WriteAheadBatchBytes > 256 << 20)
            throw new ArgumentException($"write-ahead batch {WriteAheadBatchBytes} B must be between 64 KiB and 256 MiB");
        if (WritebackBytes < 0)
            throw new ArgumentException($"writeback interval {WritebackBytes} B must not be negative");
    }
}

/// <summary>What <see cref="RollbackStore.Recover"/> found on disk.</summary>
public sealed record RecoveryReport(
    long Committed,
    long Prepared,
    IReadOnlyList<long> UncommittedEpochs,
    long RecordsFound,
    long TornBytesDiscarded,
    int CommittedLogsDropped);

/// <summary>What a rollback did.</summary>
public sealed record RollbackResult(long Checkpoint, int LogsApplied, long BlocksRestored, long BytesRestored, TimeSpan Elapsed);

/// <summary>Counters for status and benchmarks (write amplification, batching).</summary>
public sealed record StoreCounters(
    long GuestBytesWritten,
    long ImageBytesWritten,
    long LogBytesWritten,
    long BlocksStashed,
    long ZeroBlocksStashed,
    long LogSyncs);
