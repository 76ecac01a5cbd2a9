namespace McActors.Replication;

// The SecondaryActor's own protocol, besides the coordinator's (McActors.Protocol: AssignSecondary,
// Prepare, Commit...). Local messages: status queries and what the stream applier reports.

/// <summary>Answer with a <see cref="SecondaryStatus"/>.</summary>
public sealed record GetSecondaryStatus
{
    public static readonly GetSecondaryStatus Instance = new();
}

/// <summary>
/// A secondary's view. <see cref="DataPlanePort"/> is the port its data plane is bound to (0
/// before an assignment): an endpoint with port 0 picks a free port, and this is how to learn it.
/// </summary>
public sealed record SecondaryStatus(
    string ReplicaId,
    string State,
    long Generation,
    long LastReceived,
    long LastPrepared,
    long LastCommitted,
    long WritesApplied,
    long BytesApplied,
    long? ConnectedGeneration,
    int DataPlanePort);

/// <summary>
/// Stream applier → secondary: marker and guest state of checkpoint <see cref="Epoch"/> arrived, after
/// these writes, all applied to store incarnation <see cref="Incarnation"/>. Of another incarnation it
/// is stale: that store's recovery or rollback may have undone the writes, so it must never lead to a prepare.
/// </summary>
public sealed record StreamCheckpointReceived(long Generation, long Epoch, long Writes, long Bytes, long Incarnation);

/// <summary>Stream applier → secondary: the stream of <see cref="Generation"/> cannot be trusted (counts disagree, bad state blob).</summary>
public sealed record SecondaryStreamBroken(long Generation, long Epoch, string Reason);

/// <summary>Applier → secondary: the primary sent every differing chunk; from checkpoint <see cref="Epoch"/> on the image is the primary's.</summary>
public sealed record StreamSyncCompleted(long Generation, long Epoch);

/// <summary>Stream applier → secondary: a write through the gate failed in the store (not an epoch-order refusal); the store must be reopened.</summary>
public sealed record StoreWriteFailed(Exception Cause);
