namespace McActors.Nbd;

// The NBD server → NbdGuestActor requests (in-process only: each carries the completion its
// connection awaits). The guest answers by completing it; a failed one with an NbdErrorException.

/// <summary>Read <see cref="Length"/> bytes at <see cref="Offset"/> from the primary's image.</summary>
internal sealed record NbdReadRequest(long Offset, int Length, TaskCompletionSource<byte[]> Done);

/// <summary>Write <see cref="Data"/> at <see cref="Offset"/>; complete once the checkpoint holding it committed (FUA or not).</summary>
internal sealed record NbdWriteRequest(long Offset, byte[] Data, bool Fua, TaskCompletionSource Done);

/// <summary>Complete once every write completed before it is covered by a committed checkpoint.</summary>
internal sealed record NbdFlushRequest(TaskCompletionSource Done);

/// <summary>
/// The output the writes of epoch <see cref="Epoch"/> hand the primary in <c>ReleaseWhenCommitted</c>:
/// the primary sends it back to the guest when the covering checkpoint commits, releasing their replies.
/// </summary>
internal sealed record NbdEpochCommitted(long Epoch);
