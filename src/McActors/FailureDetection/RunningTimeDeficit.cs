namespace McActors.FailureDetection;

/// <summary>
/// How much running time (<see cref="ProcessRunningClock"/>) fell behind the wall clock over a
/// sliding window: the time this node's thread pool could not run in it. Fed by one thread.
/// </summary>
public sealed class RunningTimeDeficit(TimeSpan window)
{
    private readonly Queue<(long WallMs, long RunningMs)> _samples = new();

    /// <summary>Records a sample; returns the deficit between it and the oldest sample still in the window.</summary>
    public TimeSpan Add(long wallMs, long runningMs)
    {
        _samples.Enqueue((wallMs, runningMs));
        while (_samples.Count > 1 && wallMs - _samples.Peek().WallMs > window.TotalMilliseconds)
            _samples.Dequeue();
        var (oldWall, oldRunning) = _samples.Peek();
        return TimeSpan.FromMilliseconds(Math.Max(0, (wallMs - oldWall) - (runningMs - oldRunning)));
    }
}
