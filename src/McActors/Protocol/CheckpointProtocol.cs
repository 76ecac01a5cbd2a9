namespace McActors.Protocol;

// The two-phase checkpoint exchange (DESIGN.md, "Checkpoint"). Every message carries the
// generation; a replica refuses one from an older generation than its own.

/// <summary>Coordinator → primary: close epoch <see cref="Epoch"/> now (drain, marker, guest state, resume in the next).</summary>
public sealed record CloseEpoch(long Generation, long Epoch) : IFencedMessage;

/// <summary>
/// Primary → coordinator: marker and guest state of <see cref="Epoch"/> are in the stream.
/// <see cref="GuestStopped"/>: the guest stays paused from this checkpoint on (a StopGuest took
/// effect at it), so it covers every write the guest made.
/// </summary>
public sealed record EpochClosed(long Generation, long Epoch, long Writes, long Bytes, bool GuestStopped = false) : IFencedMessage;

/// <summary>Coordinator → secondary: make checkpoint <see cref="Epoch"/> durable and say so.</summary>
public sealed record Prepare(long Generation, long Epoch) : IFencedMessage;

/// <summary>Secondary → coordinator: checkpoint <see cref="Epoch"/> is durable here (image, logs, guest state).</summary>
public sealed record Prepared(long Generation, long Epoch, string Replica) : IFencedMessage;

/// <summary>
/// Coordinator → replicas: checkpoint <see cref="Epoch"/> is committed (idempotent; a late one
/// changes nothing) on <see cref="Secondaries"/> secondaries, which the primary checks against
/// <c>min-replicas</c> before it releases output.
/// </summary>
public sealed record Commit(long Generation, long Epoch, int Secondaries) : IFencedMessage;

/// <summary>Any replica → sender: your message's generation is older than mine; it changed nothing.</summary>
public sealed record StaleGeneration(long Current, long Received, string MessageType) : IControlMessage;

/// <summary>Primary or guest front-end → coordinator: close the current epoch at once (a FLUSH is waiting).</summary>
public sealed record CheckpointNow(long Generation) : IFencedMessage;

/// <summary>
/// Primary → coordinator: epoch <see cref="Epoch"/>, still open, holds <see cref="Writes"/> writes of
/// <see cref="Bytes"/> bytes so far; what a checkpoint policy that closes on size (dirty-bytes) decides on.
/// </summary>
public sealed record EpochProgress(long Generation, long Epoch, long Writes, long Bytes) : IFencedMessage;
