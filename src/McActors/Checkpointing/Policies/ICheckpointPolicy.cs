namespace McActors.Checkpointing.Policies;

/// <summary>
/// When the coordinator closes the next epoch, as plain logic (like Akka's
/// <c>IShardAllocationStrategy</c> or the Split Brain Resolver's <c>DowningStrategy.Decide()</c>):
/// tested without actors, chosen in HOCON (<c>mcactors.checkpoint.policy</c>, see
/// <see cref="CheckpointPolicies"/>). The coordinator asks on every tick of its epoch-interval
/// clock, when output waits (a CheckpointNow), after each commit, when the primary reports the open
/// epoch's size, and when a <see cref="Wait"/> it was given runs out; as a generation starts running
/// and after each close it asks only for the wait (a CloseNow then waits for the next tick or event).
/// A <see cref="CloseNow"/> is carried out only while the pipeline has room (max-in-flight): the
/// policy never overrides back-pressure.
/// </summary>
public interface ICheckpointPolicy
{
    CheckpointDecision Decide(CheckpointPolicyView view);
}

/// <summary>
/// What a policy sees. <see cref="SinceLastClose"/> counts from the last close, or from the moment
/// the generation started running. <see cref="IntervalDue"/>: the coordinator's epoch-interval
/// clock ticked, or a whole interval passed since the last close (so a fixed interval needs no
/// clock of its own). <see cref="OpenEpochBytes"/> and <see cref="OpenEpochWrites"/> are what the
/// primary last reported of the epoch it has open (0 until it reports). <see cref="OutputWaiting"/>:
/// a guest reply waits for the open epoch to commit (the primary sent CheckpointNow).
/// </summary>
public sealed record CheckpointPolicyView(
    TimeSpan SinceLastClose,
    int InFlight,
    long OpenEpochBytes,
    long OpenEpochWrites,
    bool OutputWaiting,
    bool IntervalDue);

/// <summary><see cref="CloseNow"/> or <see cref="Wait"/>.</summary>
public abstract record CheckpointDecision;

/// <summary>Close the open epoch now (if the pipeline has room).</summary>
public sealed record CloseNow : CheckpointDecision
{
    public static readonly CloseNow Instance = new();
}

/// <summary>
/// Do not close yet; ask again after <see cref="Delay"/> (sooner if something happens).
/// <see cref="UntilNextEvent"/>: no timer, only the next tick or event asks again.
/// </summary>
public sealed record Wait(TimeSpan Delay) : CheckpointDecision
{
    public static readonly Wait UntilNextEvent = new(Timeout.InfiniteTimeSpan);
}
