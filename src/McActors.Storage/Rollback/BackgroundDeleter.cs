using System.Collections.Concurrent;
using McActors.Storage.Io;

namespace McActors.Storage.Rollback;

/// <summary>
/// Unlinks dropped rollback logs off the caller's thread: unlinking a 512 MiB file takes about
/// 200 ms on ext4, and a commit must not wait for it. Before unlinking, it makes the store state
/// durable, so that a log can only vanish from disk after the commit that dropped it is durable.
/// </summary>
internal sealed class BackgroundDeleter : IDisposable
{
    private readonly BlockingCollection<string> _queue = new();
    private readonly Action _beforeDelete;
    private readonly Thread _thread;
    private readonly object _idle = new();
    private int _pending;

    public BackgroundDeleter(Action beforeDelete)
    {
        _beforeDelete = beforeDelete;
        _thread = new Thread(Run) { IsBackground = true, Name = "rollback-log-deleter" };
        _thread.Start();
    }

    /// <summary>Files queued and not yet deleted.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>The last error met while deleting, if any (surfaced by the store's status).</summary>
    public Exception? LastError { get; private set; }

    /// <summary>
    /// The fsync before a deletion failed: sticky. Nothing is deleted after it (a log may vanish only
    /// after the commit that dropped it is durable, and a later fsync succeeding proves nothing on
    /// Linux); the store fails at its next operation and is recovered from disk.
    /// </summary>
    public Exception? SyncFailure => Volatile.Read(ref _syncFailure);

    private Exception? _syncFailure;

    public void Enqueue(string path)
    {
        Interlocked.Increment(ref _pending);
        _queue.Add(path);
    }

    /// <summary>Blocks until every queued file is deleted, or the timeout passes; true if none is left.</summary>
    public bool WaitIdle(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_idle)
        {
            while (Pending > 0)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(_idle, left))
                    return Pending == 0;
            }
        }
        return true;
    }

    private void Run()
    {
        foreach (var path in _queue.GetConsumingEnumerable())
        {
            try
            {
                if (SyncFailure is not null)
                    continue; // a leftover file is dropped again by the next Recover
                try
                {
                    _beforeDelete();
                }
                catch (IOException e)
                {
                    Volatile.Write(ref _syncFailure, e);
                    LastError = e;
                    continue;
                }
                File.Delete(path);
                var dir = Path.GetDirectoryName(path);
                if (dir is not null && _queue.Count == 0)
                    Durability.SyncDirectory(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                LastError = e; // a leftover file is dropped again by the next Recover
            }
            finally
            {
                if (Interlocked.Decrement(ref _pending) == 0)
                    lock (_idle)
                        Monitor.PulseAll(_idle);
            }
        }
    }

    /// <summary>Waits for queued deletions to finish.</summary>
    public void Dispose()
    {
        _queue.CompleteAdding();
        _thread.Join();
        _queue.Dispose();
    }
}
