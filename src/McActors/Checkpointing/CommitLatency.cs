using System.Diagnostics;

namespace McActors.Checkpointing;

/// <summary>
/// Latency reporting and per-checkpoint counts as plain logic: when each checkpoint was closed
/// (Stopwatch timestamps), what the primary said it holds, when its Prepare was last sent (for
/// resends), and the latencies of the commits (CloseEpoch sent → commit persisted).
/// </summary>
public sealed class CommitLatency
{
    private readonly Dictionary<long, long> _closedAt = [];
    private readonly Dictionary<long, DateTime> _prepareSentAt = [];
    private readonly Dictionary<long, (long Writes, long Bytes)> _counts = [];
    private readonly LatencyWindow _window = new();

    public double Percentile(double p) => _window.Percentile(p);

    /// <summary>Checkpoint <paramref name="epoch"/> was closed at <paramref name="timestamp"/> (Stopwatch) and its Prepares sent at <paramref name="now"/>.</summary>
    public void Closed(long epoch, long timestamp, DateTime now)
    {
        _closedAt[epoch] = timestamp;
        _prepareSentAt[epoch] = now;
    }

    public void Counted(long epoch, long writes, long bytes) => _counts[epoch] = (writes, bytes);

    public (long Writes, long Bytes) CountsOf(long epoch) => _counts.GetValueOrDefault(epoch);

    /// <summary>True (and the send recorded) when Prepare of <paramref name="epoch"/> was last sent <paramref name="after"/> ago or more.</summary>
    public bool PrepareResendDue(long epoch, DateTime now, TimeSpan after)
    {
        if (_prepareSentAt.TryGetValue(epoch, out var sentAt) && now - sentAt < after)
            return false;
        _prepareSentAt[epoch] = now;
        return true;
    }

    /// <summary>Checkpoint <paramref name="epoch"/> committed at <paramref name="timestamp"/>: its latency (null when this coordinator did not close it), counted in the percentiles.</summary>
    public TimeSpan? Committed(long epoch, long timestamp)
    {
        _counts.Remove(epoch);
        _prepareSentAt.Remove(epoch);
        if (!_closedAt.Remove(epoch, out var closedAt))
            return null;
        var latency = Stopwatch.GetElapsedTime(closedAt, timestamp);
        _window.Add(latency);
        return latency;
    }

    /// <summary>A new generation: its checkpoints start afresh.</summary>
    public void NewGeneration()
    {
        _closedAt.Clear();
        _prepareSentAt.Clear();
        _counts.Clear();
    }

    /// <summary>Forgets the latencies measured so far (ResetCommitLatency).</summary>
    public void ClearPercentiles() => _window.Clear();
}
