namespace McActors.Protocol;

// Re-protection (DESIGN.md, "Failover" 4): a replica that joins a running generation is brought
// in sync by a background copy from the primary while the guest runs. The joiner hashes its image
// in chunks; the primary, scanning its own image in its actor (so a chunk read before a later
// write reaches the joiner before that write), sends only the chunks that differ, then "sync
// complete at epoch E": from checkpoint E on the joiner's image is the primary's, and the
// coordinator adds it to the replica set for the checkpoints it opens from then on.
// Every message of one attempt carries its Attempt id (from the AssignSecondary that began it): the
// coordinator forgets an attempt that stalls and may start another, and an answer of the forgotten
// one (a late ResyncCompleted above all) must change nothing.

/// <summary>
/// Joiner → coordinator: my resync store is open and my data plane listens. <see cref="Digest"/>
/// holds 16 bytes (XxHash128, little-endian) per chunk of <see cref="ChunkBytes"/> of the image I
/// kept, or is null when I start from an empty image.
/// </summary>
public sealed record ResyncReady(long Generation, string ReplicaId, int ChunkBytes, byte[]? Digest, long Attempt = 0) : IFencedMessage;

/// <summary>Coordinator → primary: stream to this joiner too, and copy to it every chunk whose hash differs from <see cref="Digest"/>.</summary>
public sealed record AddSecondary(long Generation, SecondaryEndpoint Endpoint, int ChunkBytes, byte[]? Digest, long Attempt = 0) : IFencedMessage;

/// <summary>Primary → coordinator, a few times a second during a copy: how far it got.</summary>
public sealed record ResyncStatus(long Generation, ResyncProgress Progress, long Attempt = 0) : IFencedMessage;

/// <summary>
/// Primary → coordinator: every chunk went out and the joiner was told "sync complete at
/// <see cref="FromEpoch"/>"; from checkpoint <see cref="FromEpoch"/> on it can prepare like any secondary.
/// </summary>
public sealed record ResyncCompleted(long Generation, string ReplicaId, long FromEpoch, long Attempt = 0) : IFencedMessage;

/// <summary>Primary → coordinator: the copy to this joiner stopped (connection lost or refused); it may try again.</summary>
public sealed record ResyncFailed(long Generation, string ReplicaId, string Reason, long Attempt = 0) : IFencedMessage;
