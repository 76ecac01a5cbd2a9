namespace McActors.Guests;

/// <summary>
/// A guest cannot become the state it was given (the message says why); thrown from
/// <see cref="GuestActorBase"/>'s RestoreState, it becomes a <see cref="GuestCommandRefused"/>.
/// </summary>
public class GuestStateRefusedException(string reason) : Exception(reason);

/// <summary>A guest state blob cannot be trusted: the message names what is wrong with it.</summary>
public class GuestStateCorruptException : GuestStateRefusedException
{
    public GuestStateCorruptException(string detail)
        : base($"guest state is corrupt: {detail}") => Detail = detail;

    public string Detail { get; }
}

/// <summary>The blob is shorter than its own header says it must be (cut off in transit or on disk).</summary>
public sealed class GuestStateTruncatedException(int length, long expectedLength)
    : GuestStateCorruptException($"blob is {length} B, truncated: it must be {expectedLength} B")
{
    public int Length { get; } = length;
    public long ExpectedLength { get; } = expectedLength;
}

/// <summary>The blob's checksum does not match its bytes (a damaged byte somewhere).</summary>
public sealed class GuestStateChecksumException(ulong stored, ulong computed)
    : GuestStateCorruptException($"checksum mismatch: stored {stored:x16}, computed {computed:x16}")
{
    public ulong Stored { get; } = stored;
    public ulong Computed { get; } = computed;
}
