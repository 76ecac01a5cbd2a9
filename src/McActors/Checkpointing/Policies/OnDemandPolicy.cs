namespace McActors.Checkpointing.Policies;

/// <summary>
/// <c>on-demand</c>: an epoch closes only when output waits (a FLUSH or FUA reply of the guest).
/// Nothing is checkpointed while the guest asks for no durability, so the rollback logs and a
/// failover's loss grow with the epoch, and a resyncing replica joins only at the next close.
/// </summary>
public sealed class OnDemandPolicy : ICheckpointPolicy
{
    public const string Name = "on-demand";

    public CheckpointDecision Decide(CheckpointPolicyView view) =>
        view.OutputWaiting ? CloseNow.Instance : Wait.UntilNextEvent;
}
