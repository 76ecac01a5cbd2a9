using McActors.Protocol;

namespace McActors.Testing;

/// <summary>What <see cref="InjectStoreFault"/> does to the node's store disk.</summary>
public enum StoreFaultKind
{
    /// <summary>Writes fail with an I/O error after <see cref="InjectStoreFault.AfterWrites"/> more writes.</summary>
    IOError,

    /// <summary>Writes fail with ENOSPC after <see cref="InjectStoreFault.AfterWrites"/> more writes.</summary>
    NoSpace,

    /// <summary>The next fsync of the store fails once with EIO, as Linux reports a lost writeback (the one after succeeds).</summary>
    SyncError,

    /// <summary>Every write takes <see cref="InjectStoreFault.Delay"/> longer (a slow secondary).</summary>
    Slow,

    /// <summary>A healthy disk again.</summary>
    Heal,
}

// The messages of /user/fault-injection. They cross processes (a chaos observer drives the
// nodes), so they are control messages: Hyperion, per src/McActors/reference.conf.

/// <summary>Makes the node's store disk fail or slow down. Answered with <see cref="FaultInjected"/>.</summary>
public sealed record InjectStoreFault(StoreFaultKind Kind, int AfterWrites, TimeSpan Delay) : IControlMessage;

/// <summary>Drops every message between this node and the node at <paramref name="Address"/> (an Akka address, both ways).</summary>
public sealed record BlackholeLink(string Address) : IControlMessage;

/// <summary>Lifts a <see cref="BlackholeLink"/>.</summary>
public sealed record HealLink(string Address) : IControlMessage;

/// <summary>The fault is in place; <paramref name="Description"/> says what it is, for the chaos log.</summary>
public sealed record FaultInjected(string Description) : IControlMessage;
