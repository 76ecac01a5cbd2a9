using McActors.Protocol;

namespace McActors.Replication;

// The primary's own protocol (the coordinator's is in Protocol/; the guest's in Guests/GuestProtocol.cs).

/// <summary>Anyone → primary: answer with <see cref="PrimaryStatus"/>.</summary>
public sealed record GetPrimaryStatus : IControlMessage
{
    public static readonly GetPrimaryStatus Instance = new();
}

/// <summary>
/// The primary's view. <see cref="Writes"/>/<see cref="Bytes"/> count writes applied since the role
/// began; <see cref="Degraded"/> is true while no secondary, or fewer than were assigned, receives the stream;
/// <see cref="OutstandingBytes"/> is each connected secondary's unacknowledged window.
/// </summary>
public sealed record PrimaryStatus(
    long Generation,
    long Epoch,
    long Writes,
    long Bytes,
    long LastClosed,
    long LastCommitted,
    IReadOnlyList<string> ConnectedSecondaries,
    bool Degraded,
    IReadOnlyDictionary<string, long> OutstandingBytes,
    string State,
    bool GuestStopped,
    string? GuestFailure) : IControlMessage;

/// <summary>
/// Front-end → primary: send <see cref="Output"/> back once the checkpoint covering every write
/// applied before this message has committed (an NBD write or FLUSH reply, DESIGN.md invariant 3).
/// </summary>
public sealed record ReleaseWhenCommitted(object Output);
