using McActors.Protocol;

namespace McActors.Events;

// What the coordinator tells anyone who listens: coordinator → the DistributedPubSub topic
// McActorsEvents.Topic → each node's EventRelay → that node's EventStream. CheckpointCommitted, one
// per checkpoint (hundreds a second), has a topic of its own that a node's relay joins only with
// mcactors.events.relay-checkpoints = on: otherwise every commit would cost a message to every node. A user's actor on any
// node subscribes with Context.System.EventStream.Subscribe(Self, typeof(IMcActorsEvent)) (or one
// event type). Published once, when the coordinator decides (after the journal write where there is
// one): a coordinator that moves does not publish again what its predecessor did. Events are
// control messages (IControlMessage): they cross nodes through the same serializer binding.

/// <summary>An event of the replicated volume; <see cref="Generation"/> is the generation it happened in.</summary>
public interface IMcActorsEvent : IControlMessage
{
    long Generation { get; }
}

/// <summary>The topic names every node agrees on.</summary>
public static class McActorsEvents
{
    /// <summary>The DistributedPubSub topic the coordinator publishes every <see cref="IMcActorsEvent"/> on, except <see cref="CheckpointCommitted"/>.</summary>
    public const string Topic = "mcactors-events";

    /// <summary>The topic of <see cref="CheckpointCommitted"/> alone (relayed to a node's EventStream only where it is turned on).</summary>
    public const string CheckpointsTopic = "mcactors-checkpoints";

    /// <summary>The topic <paramref name="e"/> is published on.</summary>
    public static string TopicOf(IMcActorsEvent e) => e is CheckpointCommitted ? CheckpointsTopic : Topic;
}

/// <summary>
/// Checkpoint <see cref="Epoch"/> is committed: the guest's writes up to it survive a failover.
/// <see cref="Latency"/>: CloseEpoch sent → commit persisted, as the status percentiles measure it
/// (null for a checkpoint this coordinator did not close).
/// </summary>
public sealed record CheckpointCommitted(long Generation, long Epoch, TimeSpan? Latency) : IMcActorsEvent;

/// <summary><see cref="Replica"/> joined the replica set (its resync finished); it takes part in the checkpoints from <see cref="FromEpoch"/> on.</summary>
public sealed record ReplicaAdded(long Generation, string Replica, long FromEpoch) : IMcActorsEvent;

/// <summary><see cref="Replica"/> left the replica set at <see cref="Epoch"/>: slow to prepare, terminated, failed or not assuming its role.</summary>
public sealed record ReplicaDropped(long Generation, string Replica, long Epoch, string Reason) : IMcActorsEvent;

/// <summary>The primary's copy to <see cref="Replica"/>: <see cref="CopiedBytes"/> of <see cref="ScannedBytes"/> scanned differed and were sent.</summary>
public sealed record ResyncProgress(long Generation, string Replica, long ScannedBytes, long TotalBytes, long CopiedBytes) : IMcActorsEvent;

/// <summary>The copy to <see cref="Replica"/> is done: from checkpoint <see cref="FromEpoch"/> on its image is the primary's (a <see cref="ReplicaAdded"/> follows).</summary>
public sealed record ResyncCompleted(long Generation, string Replica, long FromEpoch) : IMcActorsEvent;

/// <summary>
/// Primary <see cref="FromPrimary"/> was lost (<see cref="Reason"/>): <see cref="ToPrimary"/> becomes
/// the primary of generation <see cref="Generation"/>, rolled back to checkpoint <see cref="TargetCheckpoint"/>.
/// </summary>
public sealed record FailoverStarted(long Generation, string FromPrimary, string ToPrimary, long TargetCheckpoint, string Reason) : IMcActorsEvent;

/// <summary>The new primary of <see cref="Generation"/> resumed the guest; <see cref="Timeline"/> is the failover as the coordinator saw it.</summary>
public sealed record FailoverCompleted(long Generation, FailoverReport Timeline) : IMcActorsEvent;
