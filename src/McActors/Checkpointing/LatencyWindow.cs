namespace McActors.Checkpointing;

/// <summary>
/// The last <c>capacity</c> latencies in a ring, with percentiles computed on demand (status
/// requests are rare; commits are frequent, so adding must be cheap and allocation-free).
/// </summary>
public sealed class LatencyWindow
{
    /// <summary>
    /// Enough for a p99 of a multi-second bench window (10 commits/s at 100 ms epochs, hundreds per
    /// second idle) while a status request still sorts only a few kB.
    /// </summary>
    public const int DefaultCapacity = 1000;

    private readonly double[] _ms;
    private int _next;
    private int _count;

    public LatencyWindow(int capacity = DefaultCapacity)
    {
        if (capacity < 1)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be positive");
        _ms = new double[capacity];
    }

    public int Count => _count;

    /// <summary>Forgets every latency, so that later percentiles describe only what follows.</summary>
    public void Clear()
    {
        _next = 0;
        _count = 0;
    }

    public void Add(TimeSpan latency)
    {
        _ms[_next] = latency.TotalMilliseconds;
        _next = (_next + 1) % _ms.Length;
        _count = Math.Min(_count + 1, _ms.Length);
    }

    /// <summary>The nearest-rank percentile in milliseconds (0 when empty); <paramref name="p"/> in [0, 100].</summary>
    public double Percentile(double p)
    {
        if (_count == 0)
            return 0;
        var sorted = _ms[.._count];
        Array.Sort(sorted);
        var rank = (int)Math.Ceiling(p / 100 * _count);
        return sorted[Math.Clamp(rank - 1, 0, _count - 1)];
    }
}
