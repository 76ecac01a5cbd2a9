using System.Runtime.ExceptionServices;
using McActors.Storage.Io;
using McActors.Storage.Volume;

namespace McActors.Storage.Rollback;

/// <summary>
/// Two write-ahead batches: the caller fills one while a dedicated thread appends and fsyncs the
/// records of the other, so the stash work of batch k+1 overlaps the fsync of batch k. The image
/// writes of batch k are issued by the caller only after the worker's fsync of k returned: in
/// <see cref="Submit"/>, while the worker syncs batch k+1, or in <see cref="WaitInFlight"/>. The
/// fsync is the only step on the worker. Batches are applied
/// strictly in order and at most one is in flight. A failure on the worker is rethrown to the
/// caller at its next wait, and then no image write of that batch is issued.
/// </summary>
internal sealed class WriteAheadPipeline : IDisposable
{
    private readonly VolumeImage _image;
    private readonly Thread _worker;
    private readonly SemaphoreSlim _submitted = new(0);
    private readonly ManualResetEventSlim _idle = new(true);
    // The batch neither filling nor in flight, if any (two in all).
    private WriteAheadBatch? _spare;
    private WriteAheadBatch? _inFlight;
    private ExceptionDispatchInfo? _error;
    private volatile bool _stopping;
    private long _logBytes, _logSyncs;

    public WriteAheadPipeline(VolumeImage image, int capacity, int maxRecordSize)
    {
        _image = image;
        Filling = new WriteAheadBatch(capacity, maxRecordSize);
        _spare = new WriteAheadBatch(capacity, maxRecordSize);
        _worker = new Thread(Run) { IsBackground = true, Name = "rollback-write-ahead" };
        _worker.Start();
    }

    /// <summary>The batch the caller adds to.</summary>
    public WriteAheadBatch Filling { get; private set; }

    public Action<RollbackStore.CrashPoint>? CrashHook { get; set; }

    /// <summary>Fault-injection hook called before each log append of a batch.</summary>
    public IStorageFaults? Faults { get; init; }

    public long LogBytes => Interlocked.Read(ref _logBytes);
    public long LogSyncs => Interlocked.Read(ref _logSyncs);
    public long BufferBytes => 2 * Filling.BufferBytes;

    public bool HasQueued => !Filling.IsEmpty || _inFlight is not null;

    /// <summary>True if the block's image content is stale: a queued write to it is not yet applied.</summary>
    public bool IsQueued(long block) => Filling.Blocks.Contains(block) || _inFlight?.Blocks.Contains(block) == true;

    public bool IsInFlight(long block) => _inFlight?.Blocks.Contains(block) == true;

    /// <summary>
    /// Hands the filling batch to the worker once the previous one is synced, then issues the
    /// previous one's image writes while the worker syncs the new one; the previous batch, written
    /// and emptied, is the next to fill. All before returning: the caller never sees a block whose
    /// batch is neither queued nor written.
    /// </summary>
    public void Submit()
    {
        if (Filling.IsEmpty)
        {
            WaitInFlight();
            return;
        }
        _idle.Wait();
        _error?.Throw();
        var synced = _inFlight;
        _idle.Reset();
        _inFlight = Filling;
        _submitted.Release();
        if (synced is null)
        {
            Filling = _spare!;
            _spare = null;
            return;
        }
        // Still queued while its writes go out (IsQueued sees it as Filling); a failed write faults the store.
        Filling = synced;
        synced.WriteImage(_image, CrashHook);
        synced.Reset();
    }

    /// <summary>Applies everything queued: on return every record is durable and every write issued.</summary>
    public void Drain()
    {
        Submit();
        WaitInFlight();
    }

    /// <summary>Waits for the records of the batch in flight, if any, to be durable, rethrows the worker's failure, then issues the batch's image writes.</summary>
    public void WaitInFlight()
    {
        if (_inFlight is null)
            return;
        _idle.Wait();
        _error?.Throw();
        _inFlight.WriteImage(_image, CrashHook);
        _inFlight.Reset();
        _spare = _inFlight;
        _inFlight = null;
    }

    private void Run()
    {
        while (true)
        {
            _submitted.Wait();
            if (_stopping)
                return;
            try
            {
                var (bytes, syncs) = _inFlight!.AppendAndSync(CrashHook, Faults);
                Interlocked.Add(ref _logBytes, bytes);
                Interlocked.Add(ref _logSyncs, syncs);
            }
            catch (Exception e)
            {
                _error = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                _idle.Set();
            }
        }
    }

    /// <summary>Stops the worker after the batch in flight (if any) is synced; its image writes and nothing queued are applied.</summary>
    public void Dispose()
    {
        _idle.Wait();
        _stopping = true;
        _submitted.Release();
        _worker.Join();
        _submitted.Dispose();
        _idle.Dispose();
    }
}
