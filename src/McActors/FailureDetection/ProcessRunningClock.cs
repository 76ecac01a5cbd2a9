using System.Diagnostics;

namespace McActors.FailureDetection;

/// <summary>
/// A monotonic clock that stands still while this process cannot run its actors: wall-clock
/// milliseconds minus the time the process was stalled (SIGSTOP, a stalled VM) or its thread pool
/// starved (a 2-core box at load 40, a burst of start-up JIT). A timer callback on the .NET thread
/// pool, where Akka's dispatchers run the heartbeats too, re-arms itself every <see cref="Tick"/>;
/// whenever it runs more than <see cref="IgnoreBelow"/> late, the lateness is time in which this
/// node could not have handled a heartbeat, and is taken out. While a gap is still in progress (the
/// ticker has not run yet, but another thread has), the clock reads as frozen at the gap's start, so
/// the reading never depends on which thread runs first. A failure detector on this clock judges a
/// peer's silence only by time this node could have heard it (<see cref="StarvationAwareFailureDetector"/>).
/// </summary>
public sealed class ProcessRunningClock
{
    private static readonly object SharedLock = new();
    private static ProcessRunningClock? _shared;

    private readonly Func<long> _nowTicks;
    // Readings count from construction: Stopwatch ticks count from boot, and ticks x 1000 would
    // overflow a long after ~107 days of host uptime at Linux's 1 GHz frequency.
    private readonly long _origin;
    private readonly long _tickTicks;
    private readonly long _ignoreTicks;
    // Updated together by the ticker, read together by any thread.
    private volatile Reading _last;
    private Timer? _timer;

    /// <param name="nowTicks">The wall clock in Stopwatch ticks (a test passes its own).</param>
    public ProcessRunningClock(TimeSpan tick, TimeSpan ignoreBelow, Func<long>? nowTicks = null)
    {
        if (tick <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(tick), tick, "the ticker's period must be positive");
        if (ignoreBelow < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(ignoreBelow), ignoreBelow, "the ignored lateness cannot be negative");
        Tick = tick;
        IgnoreBelow = ignoreBelow;
        _nowTicks = nowTicks ?? Stopwatch.GetTimestamp;
        _tickTicks = ToTicks(tick);
        _ignoreTicks = ToTicks(ignoreBelow);
        _origin = _nowTicks();
        _last = new Reading(_origin, 0);
    }

    public TimeSpan Tick { get; }

    /// <summary>
    /// Lateness of the ticker up to this much is not taken out: a steady delay shifts every heartbeat
    /// alike and makes no silence, so forgiving it would only slow the detection of a dead peer. Only
    /// stalls longer than about a heartbeat interval, the ones that do silence peers, are forgiven.
    /// </summary>
    public TimeSpan IgnoreBelow { get; }

    /// <summary>How long this process was starved in all, so far (as of the last tick).</summary>
    public TimeSpan Starved => Stopwatch.GetElapsedTime(0, _last.StarvedTicks);

    /// <summary>
    /// The process-wide clock, started on first use with the first caller's settings (one process
    /// starves as a whole, so every actor system in it shares the one ticker; a second system's
    /// different settings are not applied).
    /// </summary>
    public static ProcessRunningClock Shared(TimeSpan tick, TimeSpan ignoreBelow)
    {
        lock (SharedLock)
        {
            if (_shared is null)
            {
                _shared = new ProcessRunningClock(tick, ignoreBelow);
                _shared.Start();
            }
            return _shared;
        }
    }

    /// <summary>
    /// Milliseconds of running time since this clock was made. Never decreasing as seen by one
    /// thread; two threads may see a few ms of disorder around a tick (a reader holding the old
    /// reading), which the phi detector reads as no silence at all.
    /// </summary>
    public long Milliseconds()
    {
        var last = _last;
        var now = _nowTicks();
        // A gap in progress counts as starvation already: frozen where the ticker will put it.
        var running = Math.Min(now, last.AtTicks + _tickTicks + _ignoreTicks) - last.StarvedTicks - _origin;
        return (long)((Int128)running * 1000 / Stopwatch.Frequency);
    }

    /// <summary>One wake-up of the ticker (public for tests, which drive the clock by hand).</summary>
    public void OnTick()
    {
        var last = _last;
        var now = _nowTicks();
        var late = now - last.AtTicks - _tickTicks - _ignoreTicks;
        _last = new Reading(now, last.StarvedTicks + Math.Max(0, late));
    }

    private void Start()
    {
        // One-shot, re-armed after each run: a late callback is the measurement, never a queue of them.
        _timer = new Timer(_ =>
        {
            OnTick();
            _timer!.Change(Tick, Timeout.InfiniteTimeSpan);
        });
        _timer.Change(Tick, Timeout.InfiniteTimeSpan);
    }

    private static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private sealed record Reading(long AtTicks, long StarvedTicks);
}
