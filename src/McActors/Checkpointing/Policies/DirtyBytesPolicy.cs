namespace McActors.Checkpointing.Policies;

/// <summary>
/// <c>dirty-bytes</c>: an epoch closes once it holds <see cref="Threshold"/> bytes of writes (as
/// the primary reports them), when output waits, and at the latest at the epoch-interval clock, so
/// that an idle or lightly written volume still checkpoints. Fewer, fuller epochs under a steady
/// write load; a failover loses at most the threshold or the interval, whichever comes first.
/// </summary>
public sealed class DirtyBytesPolicy : ICheckpointPolicy
{
    public const string Name = "dirty-bytes";

    public DirtyBytesPolicy(long threshold)
    {
        if (threshold < 1)
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "the threshold must be at least one byte");
        Threshold = threshold;
    }

    public long Threshold { get; }

    public CheckpointDecision Decide(CheckpointPolicyView view) =>
        view.OutputWaiting || view.IntervalDue || view.OpenEpochBytes >= Threshold ? CloseNow.Instance : Wait.UntilNextEvent;
}
