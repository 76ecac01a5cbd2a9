namespace McActors.Checkpointing.Policies;

/// <summary>
/// <c>fixed-interval</c> (the default): an epoch closes at every tick of the epoch-interval clock
/// and whenever output waits; a commit that frees a slot closes one at once if a whole interval
/// passed meanwhile (its tick found the pipeline full).
/// </summary>
public sealed class FixedIntervalPolicy : ICheckpointPolicy
{
    public const string Name = "fixed-interval";

    public CheckpointDecision Decide(CheckpointPolicyView view) =>
        view.OutputWaiting || view.IntervalDue ? CloseNow.Instance : Wait.UntilNextEvent;
}
