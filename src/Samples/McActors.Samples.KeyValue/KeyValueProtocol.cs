using McActors.Protocol;

namespace McActors.Samples.KeyValue;

// Client → front door (/user/kv-store on any replica node) → the primary's key-value guest.
// Every message crosses nodes, so each is an IControlMessage (bound to a serializer in hocon/).
//  Put → PutDone once the checkpoint holding the write committed (never before: a failover may roll
//        back anything not committed), or Refused.
//  Get → Value, as of a committed checkpoint: a key whose last put is not committed yet waits for it.
//  Verify → Verified: the guest reads its log back from the disk and compares it with its table.
// A node that is not primary answers NotPrimary: ask another node (the client keeps trying).

/// <summary>Client → store: set <see cref="Key"/> to <see cref="Value"/>.</summary>
public sealed record Put(string Key, string Value) : IControlMessage;

/// <summary>Store → client: the put is in a committed checkpoint (it survives any failover).</summary>
public sealed record PutDone(string Key, long Epoch) : IControlMessage;

/// <summary>Client → store: the committed value of <see cref="Key"/>.</summary>
public sealed record Get(string Key) : IControlMessage;

/// <summary>Store → client: <see cref="Value"/> is null if the key was never put.</summary>
public sealed record Value(string Key, string? Data) : IControlMessage;

/// <summary>Client → store: check that the on-disk log replays to the in-memory table.</summary>
public sealed record Verify : IControlMessage
{
    public static readonly Verify Instance = new();
}

/// <summary>Store → client: the verdict, over <see cref="Records"/> log records and <see cref="Keys"/> keys.</summary>
public sealed record Verified(bool Ok, long Records, int Keys, string Detail) : IControlMessage;

/// <summary>Store → client: the request was not carried out (too large, log full, the guest stopped).</summary>
public sealed record Refused(object Request, string Reason) : IControlMessage;

/// <summary>Front door → client: this node is not the primary now; try another.</summary>
public sealed record NotPrimary(string Node) : IControlMessage;
