using System.Diagnostics;
using System.Globalization;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Node.Bench;

// One file over ~400 lines on purpose: `bench storage` is one measurement script whose rows share
// the work directory, the sizes and the table; each row is one method, in the order it prints.

/// <summary>Where <c>bench storage</c> works and how big it goes.</summary>
/// <param name="BaseDirectory">Directory in which a fresh work directory is made (and removed at the end); null: the system temp directory.</param>
/// <param name="Quick">Every size divided by <see cref="StorageBench.QuickDivisor"/>: a smoke test.</param>
public sealed record StorageBenchSettings(string? BaseDirectory, bool Quick);

/// <summary>A check inside a bench failed: the engine did not do what was measured, so the numbers mean nothing.</summary>
public sealed class BenchFailedException(string message) : Exception(message);

/// <summary>
/// <c>bench storage</c>: the rollback store against plain image writes, on this machine's disk.
/// <list type="bullet">
/// <item>(a) write throughput through the store (copy-before-write) vs plain image writes, same data and offsets;</item>
/// <item>(b) commit time for logs of growing size (must be constant: the unlink is in the background);</item>
/// <item>(c) rollback throughput against dirty data, on a small and a large sparse volume;</item>
/// <item>(d) peak memory of the process and of the store.</item>
/// </list>
/// Row names do not change with <c>--quick</c> (they name the full-run sizes), so a smoke test can
/// look for the same rows.
/// </summary>
public sealed class StorageBench
{
    // ---- Run-wide -------------------------------------------------------------------------

    /// <summary>Seed of every random choice (data, offsets); printed, so a run can be repeated exactly.</summary>
    public const int Seed = 20_250_611;

    /// <summary>--quick divides every byte count by this: ~8x less I/O, same code paths, same rows.</summary>
    public const int QuickDivisor = 8;

    /// <summary>
    /// Every guest write is 64 KiB at a 64 KiB-aligned offset: a typical large guest I/O, and the
    /// largest block size measured, so no write straddles a tracking block at either block size.
    /// </summary>
    private const int IoBytes = 64 << 10;

    /// <summary>
    /// Random bytes generated once and reused, sliced at random offsets, for every write: a seeded
    /// Random makes ~450 MiB/s here, slower than the disk, so fresh data per write would measure
    /// Random. 8 MiB is twice the default write-ahead batch, so a batch never repeats itself.
    /// </summary>
    private const int RandomPoolBytes = 8 << 20;

    /// <summary>Prefill goes out in 1 MiB sequential writes: big enough for streaming speed.</summary>
    private const int PrefillChunkBytes = 1 << 20;

    /// <summary>The engine's default block size: rows for it carry no block-size suffix in (c).</summary>
    private const int DefaultBlockSize = VolumeDescriptor.DefaultBlockSize;

    /// <summary>The store runs with the engine defaults, as the node does until storage.conf says otherwise.</summary>
    private static readonly RollbackStoreOptions StoreOptions = new();

    // ---- (a) write throughput ---------------------------------------------------------------

    /// <summary>1 GiB image, 4x the data written, so that random offsets mostly land on fresh blocks.</summary>
    private const long WriteVolumeBytes = 1L << 30;

    /// <summary>256 MiB of guest writes per round: 64 default write-ahead batches, long enough to hide fixed costs.</summary>
    private const long WriteBytes = 256L << 20;

    /// <summary>The engine default and the largest block size a volume is expected to use.</summary>
    private static readonly int[] WriteBlockSizes = [4096, 65536];

    /// <summary>The sparse variant (old content all zero, header-only stashes) runs at 4 KiB only.</summary>
    private const int SparseWriteBlockSize = 4096;

    /// <summary>
    /// One untimed round first: the first pass through the write path runs unoptimised JIT code and
    /// meets cold files (it measured up to 2x slower here), a running node does not.
    /// </summary>
    private const int WarmupRounds = 1;

    /// <summary>Timed rounds per pair, order alternating; the median is reported (single runs vary by ~1.5x here).</summary>
    private const int TimedRounds = 3;

    // ---- (b) commit -------------------------------------------------------------------------

    /// <summary>Stashed bytes in the committed log: a quiet epoch, a busy one, and a huge one.</summary>
    private static readonly long[] CommitLogBytes = [1L << 20, 64L << 20, 512L << 20];

    private const int CommitBlockSize = 4096;

    /// <summary>An unlink taking longer than this means the deleter is stuck: the bench fails.</summary>
    private static readonly TimeSpan UnlinkTimeout = TimeSpan.FromSeconds(60);

    // ---- (c) rollback -----------------------------------------------------------------------

    /// <summary>
    /// Sparse volumes to roll back: 1 GiB (dirty data is a large share of it) and 64 GiB (dirty
    /// data scattered thinly, sparse bitmaps), the latter also with 64 KiB blocks.
    /// Labels name the full-run size.
    /// </summary>
    private static readonly (string Label, long VolumeBytes, int BlockSize)[] RollbackVolumes =
    [
        ("1g", 1L << 30, 4096),
        ("64g", 64L << 30, 4096),
        ("64g", 64L << 30, 65536),
    ];

    /// <summary>Dirty data to undo, spread over <see cref="RollbackEpochs"/> epochs.</summary>
    private static readonly long[] RollbackDirtyBytes = [64L << 20, 256L << 20];

    /// <summary>Three epochs, so a rollback applies several logs newest first, as after a failover.</summary>
    private const int RollbackEpochs = 3;

    /// <summary>Written ranges read back around a rollback: enough to catch a log not applied, cheap.</summary>
    private const int VerifyRanges = 8;

    // ---- Targets ----------------------------------------------------------------------------

    /// <summary>Copy-before-write writes a first-touched block twice (old content to the log, new to the image): half speed is the bar.</summary>
    private static readonly BenchTarget CbwWriteRatioTarget = BenchTarget.AtLeast(0.5);

    /// <summary>A commit is on the checkpoint's critical path: it must not depend on the log size.</summary>
    private static readonly BenchTarget CommitMsTarget = BenchTarget.AtMost(1);

    /// <summary>A failover's rollback of a few hundred MiB must take well under a second.</summary>
    private static readonly BenchTarget RollbackMibPerSecondTarget = BenchTarget.AtLeast(600);

    private const double Mib = 1 << 20;

    private readonly string _workDirectory;
    private readonly int _divisor;
    private readonly TextWriter _log;
    private readonly CancellationToken _cancel;
    private readonly Random _random = new(Seed);
    private readonly byte[] _pool = new byte[RandomPoolBytes];
    private readonly byte[] _readBuffer = new byte[IoBytes];
    private readonly byte[] _otherReadBuffer = new byte[IoBytes];
    private readonly BenchReport _report = new();
    private long _storeMemoryMax;

    private StorageBench(string workDirectory, bool quick, TextWriter log, CancellationToken cancel)
    {
        _workDirectory = workDirectory;
        _divisor = quick ? QuickDivisor : 1;
        _log = log;
        _cancel = cancel;
        _random.NextBytes(_pool);
    }

    /// <summary>Runs every measurement in a fresh work directory, removed at the end whatever happens.</summary>
    public static BenchReport Run(StorageBenchSettings settings, TextWriter log, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(log);
        const string prefix = "mcactors-bench-storage-";
        var workDirectory = settings.BaseDirectory is null
            ? Directory.CreateTempSubdirectory(prefix).FullName
            : Directory.CreateDirectory(Path.Combine(settings.BaseDirectory, prefix + Guid.NewGuid().ToString("N")[..8])).FullName;
        try
        {
            return new StorageBench(workDirectory, settings.Quick, log, cancel).RunAll();
        }
        finally
        {
            DeleteDirectory(workDirectory, log);
        }
    }

    private BenchReport RunAll()
    {
        _log.WriteLine($"bench storage: seed {Seed}, {(_divisor == 1 ? "full sizes" : $"quick (sizes / {_divisor})")}, " +
            $"write-ahead batch {StoreOptions.WriteAheadBatchBytes / Mib:0.#} MiB, in {_workDirectory}");
        _report.Add("seed", Seed, "", 0);
        _report.Add("size_divisor", _divisor, "x", 0);
        MeasureWrites();
        MeasureCommits();
        MeasureRollbacks();
        MeasureMemory();
        return _report;
    }

    // ---- (a) ----------------------------------------------------------------------------------

    private void MeasureWrites()
    {
        var ratios = new List<double>();
        foreach (var blockSize in WriteBlockSizes)
        {
            var suffix = BlockLabel(blockSize);
            var (store, plain) = MeasureWritePair(blockSize, prefilled: true, $"write {suffix}");
            _report.Add($"cbw_write_mib_s_{suffix}", store, "MiB/s", 1);
            _report.Add($"plain_write_mib_s_{suffix}", plain, "MiB/s", 1);
            ratios.Add(_report.Add($"cbw_write_ratio_{suffix}", store / plain, "x", 3).Value);
        }
        _report.Add("cbw_write_ratio", ratios.Min(), "x", 3, CbwWriteRatioTarget);

        var sparseSuffix = BlockLabel(SparseWriteBlockSize);
        var (sparseStore, sparsePlain) = MeasureWritePair(SparseWriteBlockSize, prefilled: false, $"write {sparseSuffix} sparse");
        _report.Add($"cbw_write_mib_s_sparse_{sparseSuffix}", sparseStore, "MiB/s", 1);
        _report.Add($"plain_write_mib_s_sparse_{sparseSuffix}", sparsePlain, "MiB/s", 1);
        _report.Add($"cbw_write_ratio_sparse_{sparseSuffix}", sparseStore / sparsePlain, "x", 3);
    }

    /// <summary>
    /// The same writes (offsets and data) into a plain image and through a store, each timed up to
    /// and including its final fsync (image Flush, store Prepare). Returns the median MiB/s of
    /// guest data over the timed rounds.
    /// <para>
    /// The page cache cannot be dropped between phases without root, so instead the two take turns
    /// and the order alternates by round (plain first, then store first, ...); each phase ends in
    /// its own fsync, so neither inherits the other's dirty pages. Both images are equally cached
    /// (the machine's RAM holds them). A prefilled pair keeps its images across rounds (the store
    /// commits each round's epoch, so the next round stashes afresh); a sparse pair is made anew
    /// for each round, so that its old content stays all zero.
    /// </para>
    /// </summary>
    private (double Store, double Plain) MeasureWritePair(int blockSize, bool prefilled, string label)
    {
        var directory = PhaseDirectory(label.Replace(' ', '-'));
        var volumeBytes = Scaled(WriteVolumeBytes);
        var storeRates = new List<double>();
        var plainRates = new List<double>();
        WriteTargets? targets = null;
        try
        {
            for (var round = 0; round < WarmupRounds + TimedRounds; round++)
            {
                if (targets is null || !prefilled)
                {
                    if (targets is not null)
                    {
                        targets.Dispose();
                        DeleteDirectory(targets.Directory, _log);
                    }
                    targets = OpenWriteTargets(Path.Combine(directory, $"round-{round}"), volumeBytes, blockSize, prefilled);
                }
                var plan = RandomPlan(volumeBytes, Scaled(WriteBytes), distinct: false);
                var before = targets.Store.Counters;
                var epoch = targets.Store.PreparedEpoch + 1;
                var plainFirst = round % 2 == 0;
                TimeSpan plainTime = default, storeTime = default;
                for (var turn = 0; turn < 2; turn++)
                {
                    if (plainFirst == (turn == 0))
                        plainTime = Time(() =>
                        {
                            WritePlain(targets.Plain, plan);
                            targets.Plain.Flush();
                        });
                    else
                        storeTime = Time(() =>
                        {
                            WriteStore(targets.Store, epoch, plan, 0, plan.Count);
                            targets.Store.Prepare(epoch);
                        });
                }
                Observe(targets.Store);
                var c = Delta(before, targets.Store.Counters);
                if (prefilled)
                    Require(c.ZeroBlocksStashed == 0, $"{label}: {c.ZeroBlocksStashed} stashes of zero blocks on a prefilled image");
                else
                    Require(c.ZeroBlocksStashed == c.BlocksStashed, $"{label}: {c.BlocksStashed - c.ZeroBlocksStashed} non-zero stashes on a sparse image");
                // Same writes, same final image: compare a few ranges.
                foreach (var i in SampleIndexes(plan.Count))
                {
                    targets.Plain.Read(plan.Offsets[i], _readBuffer);
                    targets.Store.Read(plan.Offsets[i], _otherReadBuffer);
                    Require(_readBuffer.AsSpan().SequenceEqual(_otherReadBuffer), $"{label}: store and plain image differ at offset {plan.Offsets[i]}");
                }
                CommitAndWaitForUnlink(targets.Store, epoch);

                var warmup = round < WarmupRounds;
                if (!warmup)
                {
                    plainRates.Add(MibPerSecond(plan.Bytes, plainTime));
                    storeRates.Add(MibPerSecond(plan.Bytes, storeTime));
                }
                _log.WriteLine($"  {label} {(warmup ? "warm-up" : $"round {round - WarmupRounds + 1}")} ({(plainFirst ? "plain" : "store")} first): " +
                    $"plain {MibPerSecond(plan.Bytes, plainTime):F1} MiB/s, store {MibPerSecond(plan.Bytes, storeTime):F1} MiB/s " +
                    $"({c.BlocksStashed} stashes, log {c.LogBytesWritten / Mib:F1} MiB in {c.LogSyncs} syncs)");
            }
        }
        finally
        {
            targets?.Dispose();
        }
        DeleteDirectory(directory, _log);
        return (BenchStatistics.Median(storeRates), BenchStatistics.Median(plainRates));
    }

    /// <summary>A plain image and a store over the same volume size, made for (a).</summary>
    private sealed record WriteTargets(string Directory, VolumeImage Plain, RollbackStore Store) : IDisposable
    {
        public void Dispose()
        {
            Store.Dispose();
            Plain.Dispose();
        }
    }

    private WriteTargets OpenWriteTargets(string directory, long volumeBytes, int blockSize, bool prefilled)
    {
        Directory.CreateDirectory(directory);
        var plain = VolumeImage.Create(Path.Combine(directory, "plain.img"), volumeBytes);
        try
        {
            var storeDirectory = Path.Combine(directory, "store");
            var store = prefilled
                ? CreatePrefilledStore(storeDirectory, volumeBytes, blockSize, plain)
                : RollbackStore.Create(storeDirectory, VolumeDescriptor.New(volumeBytes, blockSize), StoreOptions);
            return new WriteTargets(directory, plain, store);
        }
        catch
        {
            plain.Dispose();
            throw;
        }
    }

    // ---- (b) ----------------------------------------------------------------------------------

    private void MeasureCommits()
    {
        var directory = PhaseDirectory("commit");
        var commitMax = 0.0;
        using (var store = CreatePrefilledStore(directory, Scaled(CommitLogBytes.Max()), CommitBlockSize))
        {
            // One commit untimed first, so that the timed ones do not pay for JIT compilation of
            // the commit path: a running node has committed many times before.
            long epoch = 1;
            CommitEpoch(store, epoch, SequentialPlan(IoBytes));
            foreach (var fullBytes in CommitLogBytes)
            {
                epoch++;
                var (commit, unlink) = CommitEpoch(store, epoch, SequentialPlan(Scaled(fullBytes)));
                var label = $"{fullBytes >> 20}mib";
                commitMax = Math.Max(commitMax, _report.Add($"commit_ms_{label}", commit.TotalMilliseconds, "ms", 3).Value);
                if (fullBytes == CommitLogBytes.Max())
                    _report.Add($"background_unlink_ms_{label}", unlink.TotalMilliseconds, "ms", 1);
                _log.WriteLine($"  commit {label}: {commit.TotalMilliseconds:F3} ms, background unlink {unlink.TotalMilliseconds:F1} ms");
            }
        }
        _report.Add("commit_ms_max", commitMax, "ms", 3, CommitMsTarget);
        DeleteDirectory(directory, _log);
    }

    /// <summary>Writes the plan in its own epoch, prepares it, times the commit alone, then waits for the unlink.</summary>
    private (TimeSpan Commit, TimeSpan Unlink) CommitEpoch(RollbackStore store, long epoch, WritePlan plan)
    {
        var before = store.Counters;
        WriteStore(store, epoch, plan, 0, plan.Count);
        store.Prepare(epoch);
        Observe(store);
        var c = Delta(before, store.Counters);
        var expected = plan.Bytes / store.Descriptor.BlockSize;
        Require(c.BlocksStashed == expected && c.ZeroBlocksStashed == 0,
            $"commit: epoch {epoch} should stash {expected} non-zero blocks, stashed {c.BlocksStashed} ({c.ZeroBlocksStashed} zero)");

        return CommitAndWaitForUnlink(store, epoch);
    }

    /// <summary>
    /// Commits a prepared epoch, timing the call alone, then waits for the store's background
    /// deleter to unlink the dropped log, so that it does not disturb the next measurement.
    /// </summary>
    private (TimeSpan Commit, TimeSpan Unlink) CommitAndWaitForUnlink(RollbackStore store, long epoch)
    {
        var start = Stopwatch.GetTimestamp();
        store.Commit(epoch);
        var commit = Stopwatch.GetElapsedTime(start);

        start = Stopwatch.GetTimestamp();
        Require(store.WaitForDeletes(UnlinkTimeout), $"the dropped log of epoch {epoch} was not unlinked within {UnlinkTimeout}");
        var unlink = Stopwatch.GetElapsedTime(start);
        Require(store.LoggedEpochs.Count == 0 && store.CommittedEpoch == epoch, $"epoch {epoch} still has a log after its commit");
        return (commit, unlink);
    }

    // ---- (c) ----------------------------------------------------------------------------------

    private void MeasureRollbacks()
    {
        // The first scenario once untimed: the first rollback runs unoptimised JIT code, a failover does not.
        var (_, warmupVolumeBytes, warmupBlockSize) = RollbackVolumes[0];
        MeasureRollback("rollback warm-up", Scaled(warmupVolumeBytes), warmupBlockSize, Scaled(RollbackDirtyBytes[0]));

        var rates = new List<double>();
        foreach (var (volumeLabel, fullVolumeBytes, blockSize) in RollbackVolumes)
            foreach (var fullDirtyBytes in RollbackDirtyBytes)
            {
                var name = $"rollback_mib_s_{volumeLabel}_{fullDirtyBytes >> 20}mib"
                    + (blockSize == DefaultBlockSize ? "" : $"_{BlockLabel(blockSize)}");
                var rate = MeasureRollback(name, Scaled(fullVolumeBytes), blockSize, Scaled(fullDirtyBytes));
                rates.Add(_report.Add(name, rate, "MiB/s", 1).Value);
            }
        _report.Add("rollback_mib_s_min", rates.Min(), "MiB/s", 1, RollbackMibPerSecondTarget);
    }

    /// <summary>
    /// A sparse volume gets <paramref name="dirtyBytes"/> of scattered writes over several epochs,
    /// prepared (durable, as in real life), then is rolled back to checkpoint 0, timed including
    /// the rollback's final fsync. Checks that written ranges read as zero afterwards.
    /// </summary>
    private double MeasureRollback(string name, long volumeBytes, int blockSize, long dirtyBytes)
    {
        var directory = PhaseDirectory(name.Replace(' ', '-'));
        var plan = RandomPlan(volumeBytes, dirtyBytes, distinct: true);
        TimeSpan elapsed;
        using (var store = RollbackStore.Create(directory, VolumeDescriptor.New(volumeBytes, blockSize), StoreOptions))
        {
            for (var epoch = 1; epoch <= RollbackEpochs; epoch++)
                WriteStore(store, epoch, plan, plan.Count * (epoch - 1) / RollbackEpochs, plan.Count * epoch / RollbackEpochs);
            store.Prepare(RollbackEpochs);
            Observe(store);
            foreach (var i in SampleIndexes(plan.Count))
            {
                store.Read(plan.Offsets[i], _readBuffer);
                Require(_readBuffer.AsSpan().SequenceEqual(Source(plan, i)), $"{name}: offset {plan.Offsets[i]} does not hold the data written there");
            }

            var start = Stopwatch.GetTimestamp();
            var result = store.RollbackTo(0);
            elapsed = Stopwatch.GetElapsedTime(start);

            Require(result.LogsApplied == RollbackEpochs && result.BytesRestored == dirtyBytes && store.PreparedEpoch == 0,
                $"{name}: rollback applied {result.LogsApplied} logs, {result.BytesRestored} B; expected {RollbackEpochs} logs, {dirtyBytes} B");
            // Checkpoint 0 of a sparse volume is all zeroes.
            foreach (var i in SampleIndexes(plan.Count))
            {
                store.Read(plan.Offsets[i], _readBuffer);
                Require(!_readBuffer.AsSpan().ContainsAnyExcept((byte)0), $"{name}: offset {plan.Offsets[i]} is not zero after the rollback to checkpoint 0");
            }
            _log.WriteLine($"  {name}: {dirtyBytes / Mib:F0} MiB in {elapsed.TotalMilliseconds:F1} ms");
        }
        DeleteDirectory(directory, _log);
        return MibPerSecond(dirtyBytes, elapsed);
    }

    // ---- (d) ----------------------------------------------------------------------------------

    private void MeasureMemory()
    {
        _report.Add("peak_rss_mib", PeakRssBytes() / Mib, "MiB", 1);
        _report.Add("store_memory_mib", _storeMemoryMax / Mib, "MiB", 2);
    }

    /// <summary>VmHWM (peak resident set) from /proc; elsewhere the runtime's peak working set.</summary>
    private static long PeakRssBytes()
    {
        const string statusFile = "/proc/self/status";
        const string field = "VmHWM:";
        if (File.Exists(statusFile))
            foreach (var line in File.ReadLines(statusFile))
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    // "VmHWM:	  123456 kB"
                    var kib = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                    return long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
                }
        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }

    private void Observe(RollbackStore store) => _storeMemoryMax = Math.Max(_storeMemoryMax, store.MemoryBytes);

    // ---- Writes ---------------------------------------------------------------------------------

    /// <summary>The writes of one phase, drawn up front: offsets and where in the random pool each one's data starts.</summary>
    private sealed record WritePlan(long[] Offsets, int[] Sources)
    {
        public int Count => Offsets.Length;
        public long Bytes => (long)Offsets.Length * IoBytes;
    }

    /// <summary>64 KiB writes at random 64 KiB-aligned offsets; <paramref name="distinct"/>: no offset twice.</summary>
    private WritePlan RandomPlan(long volumeBytes, long totalBytes, bool distinct)
    {
        var count = checked((int)(totalBytes / IoBytes));
        var slots = volumeBytes / IoBytes;
        if (distinct && count > slots)
            throw new InvalidOperationException($"{count} distinct writes do not fit in {slots} slots");
        var offsets = new long[count];
        var used = distinct ? new HashSet<long>(count) : null;
        for (var i = 0; i < count; i++)
        {
            long slot;
            do
                slot = _random.NextInt64(slots);
            while (used is not null && !used.Add(slot));
            offsets[i] = slot * IoBytes;
        }
        return new WritePlan(offsets, DrawSources(count));
    }

    /// <summary>64 KiB writes from offset 0 up: distinct blocks.</summary>
    private WritePlan SequentialPlan(long totalBytes)
    {
        var count = checked((int)(totalBytes / IoBytes));
        var offsets = new long[count];
        for (var i = 0; i < count; i++)
            offsets[i] = (long)i * IoBytes;
        return new WritePlan(offsets, DrawSources(count));
    }

    private int[] DrawSources(int count)
    {
        var sources = new int[count];
        for (var i = 0; i < count; i++)
            sources[i] = PoolStart(IoBytes);
        return sources;
    }

    /// <summary>A random sector-aligned start in the pool for <paramref name="length"/> bytes.</summary>
    private int PoolStart(int length) =>
        _random.Next((RandomPoolBytes - length) / VolumeDescriptor.SectorSize + 1) * VolumeDescriptor.SectorSize;

    private ReadOnlySpan<byte> Source(WritePlan plan, int i) => _pool.AsSpan(plan.Sources[i], IoBytes);

    private void WritePlain(VolumeImage image, WritePlan plan)
    {
        for (var i = 0; i < plan.Count; i++)
        {
            _cancel.ThrowIfCancellationRequested();
            image.Write(plan.Offsets[i], Source(plan, i));
        }
    }

    private void WriteStore(RollbackStore store, long epoch, WritePlan plan, int from, int to)
    {
        for (var i = from; i < to; i++)
        {
            _cancel.ThrowIfCancellationRequested();
            store.Write(epoch, plan.Offsets[i], Source(plan, i));
        }
    }

    /// <summary>
    /// A store whose image is full of random data at checkpoint 0 (so stashes carry data). The
    /// prefill must be in the image before any store write, so: create, close, fill the image
    /// directly, reopen with Recover. <paramref name="twins"/> get the identical prefill.
    /// </summary>
    private RollbackStore CreatePrefilledStore(string directory, long volumeBytes, int blockSize, params VolumeImage[] twins)
    {
        RollbackStore.Create(directory, VolumeDescriptor.New(volumeBytes, blockSize), StoreOptions).Dispose();
        var start = Stopwatch.GetTimestamp();
        using (var image = VolumeImage.Open(Path.Combine(directory, RollbackStore.ImageFileName), volumeBytes))
        {
            VolumeImage[] targets = [image, .. twins];
            for (long offset = 0; offset < volumeBytes; offset += PrefillChunkBytes)
            {
                _cancel.ThrowIfCancellationRequested();
                var chunk = _pool.AsSpan(PoolStart(PrefillChunkBytes), (int)Math.Min(PrefillChunkBytes, volumeBytes - offset));
                foreach (var target in targets)
                    target.Write(offset, chunk);
            }
            foreach (var target in targets)
                target.Flush();
        }
        _log.WriteLine($"  prefill {volumeBytes / Mib:F0} MiB x {1 + twins.Length} in {Stopwatch.GetElapsedTime(start).TotalSeconds:F1} s");
        return RollbackStore.Recover(directory, StoreOptions);
    }

    // ---- Helpers --------------------------------------------------------------------------------

    private long Scaled(long fullBytes) => fullBytes / _divisor;

    private static TimeSpan Time(Action action)
    {
        var start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start);
    }

    private static StoreCounters Delta(StoreCounters before, StoreCounters after) => new(
        after.GuestBytesWritten - before.GuestBytesWritten,
        after.ImageBytesWritten - before.ImageBytesWritten,
        after.LogBytesWritten - before.LogBytesWritten,
        after.BlocksStashed - before.BlocksStashed,
        after.ZeroBlocksStashed - before.ZeroBlocksStashed,
        after.LogSyncs - before.LogSyncs);

    /// <summary>A few plan indexes spread over the whole plan (first and last included).</summary>
    private static IEnumerable<int> SampleIndexes(int count) =>
        Enumerable.Range(0, VerifyRanges).Select(k => (int)((long)(count - 1) * k / (VerifyRanges - 1))).Distinct();

    private string PhaseDirectory(string name)
    {
        _cancel.ThrowIfCancellationRequested();
        return Directory.CreateDirectory(Path.Combine(_workDirectory, name)).FullName;
    }

    private static string BlockLabel(int blockSize) => $"{blockSize >> 10}k";

    private static double MibPerSecond(long bytes, TimeSpan elapsed) => bytes / Mib / elapsed.TotalSeconds;

    private static void Require(bool condition, string failure)
    {
        if (!condition)
            throw new BenchFailedException(failure);
    }

    /// <summary>Removes a directory tree; a failure is reported, not thrown, so it never hides the bench's own error.</summary>
    private static void DeleteDirectory(string directory, TextWriter log)
    {
        try
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.WriteLine($"warning: could not remove {directory}: {e.Message}");
        }
    }
}
