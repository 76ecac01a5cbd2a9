using McActors.Storage.Io;

namespace McActors.Testing;

/// <summary>
/// A disk that fails or slows down on command, for a <see cref="Storage.Rollback.RollbackStore"/>
/// (<c>RollbackStoreOptions.Faults</c>) or a node (<c>McActorsSettings.StoreFaults</c>). Switchable
/// at any time from any thread; a switch applies from the next write on. A failed write throws
/// before anything reaches the file, like a pwrite that returned an error. fsyncs are failed apart
/// from writes (<see cref="FailSync"/>): one fsync fails, the ones after it succeed, as on Linux,
/// where a failed writeback is reported once and its pages are then clean but not on disk.
/// </summary>
public sealed class StoreFaultInjector : IStorageFaults
{
    /// <summary>errno ENOSPC on Linux; the HResult of the exception <see cref="NoSpace"/> throws.</summary>
    public const int ENOSPC = 28;

    /// <summary>errno EIO on Linux; the HResult of the exception <see cref="FailAfterWrites"/> throws.</summary>
    public const int EIO = 5;

    // One immutable mode, swapped atomically: a write sees either the old or the new mode whole.
    private Mode _mode = Mode.Healthy;
    private long _writes;
    private long _failures;
    private long _syncs;
    private SyncFault? _syncFault;

    /// <summary>Writes that reached the hook (failed ones included) since this injector was made.</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Writes and fsyncs this injector made fail.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>What the disk does now, for logs and replies.</summary>
    public string Description => Volatile.Read(ref _mode).Description +
        (Volatile.Read(ref _syncFault) is { } f && Interlocked.Read(ref f.Remaining) > 0 ? $"; {f.Description}" : "");

    /// <summary>The next <paramref name="writes"/> writes succeed; every one after fails with an EIO-like IOException until <see cref="Heal"/>.</summary>
    public void FailAfterWrites(int writes) =>
        Set(writes, "I/O error", (path, offset) => new IOException($"Input/output error (injected) writing {path} at {offset}", EIO));

    /// <summary>
    /// Like <see cref="FailAfterWrites"/> but the disk is full: the IOException's message says
    /// "No space left on device" and its HResult is <see cref="ENOSPC"/> (28), as .NET reports a
    /// full file system on Linux.
    /// </summary>
    public void NoSpace(int afterWrites = 0) =>
        Set(afterWrites, "no space", (path, _) => new IOException($"No space left on device : '{path}' (injected)", ENOSPC));

    /// <summary>Every write waits <paramref name="delay"/> first (a slow disk), then succeeds.</summary>
    public void SlowWrites(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        Volatile.Write(ref _mode, new Mode($"slow: {delay.TotalMilliseconds} ms per write", delay, 0, null));
    }

    /// <summary>fsyncs that reached the hook (the failed one included) since this injector was made.</summary>
    public long Syncs => Interlocked.Read(ref _syncs);

    /// <summary>
    /// The <paramref name="nth"/> fsync from now (1: the next one) of a file whose path ends with
    /// <paramref name="pathEndsWith"/> (any file if null) fails with an EIO-like IOException; every
    /// other succeeds. Independent of the write mode; <see cref="Heal"/> cancels it.
    /// </summary>
    public void FailSync(int nth = 1, string? pathEndsWith = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nth);
        Volatile.Write(ref _syncFault, new SyncFault(nth, pathEndsWith));
    }

    /// <summary>A healthy disk again (no write fails, no fsync is going to).</summary>
    public void Heal()
    {
        Volatile.Write(ref _mode, Mode.Healthy);
        Volatile.Write(ref _syncFault, null);
    }

    public void BeforeSync(string path)
    {
        Interlocked.Increment(ref _syncs);
        if (Volatile.Read(ref _syncFault) is not { } fault || (fault.PathEndsWith is { } suffix && !path.EndsWith(suffix, StringComparison.Ordinal)))
            return;
        if (Interlocked.Decrement(ref fault.Remaining) != 0)
            return;
        Interlocked.Increment(ref _failures);
        throw new IOException($"Input/output error (injected) on fsync of {path}", EIO);
    }

    public void BeforeWrite(string path, long offset, int length)
    {
        var mode = Volatile.Read(ref _mode);
        Interlocked.Increment(ref _writes);
        if (mode.Delay > TimeSpan.Zero)
            Thread.Sleep(mode.Delay); // we are on the store's I/O thread, which a slow disk would block too
        if (mode.Failure is null)
            return;
        if (Interlocked.Decrement(ref mode.Allowed) >= 0)
            return;
        Interlocked.Increment(ref _failures);
        throw mode.Failure(path, offset);
    }

    private void Set(int afterWrites, string what, Func<string, long, IOException> failure)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterWrites);
        Volatile.Write(ref _mode, new Mode($"{what} after {afterWrites} writes", TimeSpan.Zero, afterWrites, failure));
    }

    private sealed class SyncFault(int nth, string? pathEndsWith)
    {
        public string? PathEndsWith { get; } = pathEndsWith;
        public string Description => $"fsync {nth} of {PathEndsWith ?? "any file"} fails";

        // Matching fsyncs left until the one that fails; at or below zero once it failed.
        public long Remaining = nth;
    }

    private sealed class Mode(string description, TimeSpan delay, long allowed, Func<string, long, IOException>? failure)
    {
        public static readonly Mode Healthy = new("healthy", TimeSpan.Zero, 0, null);

        public string Description { get; } = description;
        public TimeSpan Delay { get; } = delay;
        public Func<string, long, IOException>? Failure { get; } = failure;

        // Writes still allowed before the failures start; counts below zero once failing.
        public long Allowed = allowed;
    }
}
