using Akka.Actor;
using McActors.Storage;

namespace McActors.Replication;

/// <summary>
/// What a failure of the RollbackStoreActor means (the SecondaryActor supervises it with this).
/// A disk or storage error is transient as far as we can tell: restart, which recovers the store
/// from disk, and recovery is what proves (or refuses) the files. A store that cannot vouch for
/// its image, or a broken epoch protocol, is not fixed by retrying: stop, and the secondary
/// reports that it needs a resync (invariant 5: never promote an image it can't vouch for).
/// </summary>
public static class StoreSupervision
{
    /// <summary>Restarts allowed within <see cref="RestartWindow"/> before the store is stopped for good.</summary>
    public const int MaxRestarts = 3;

    public static readonly TimeSpan RestartWindow = TimeSpan.FromMinutes(1);

    public static Directive Decide(Exception failure) => IsResyncRequired(failure) ? Directive.Stop : Directive.Restart;

    /// <summary>True when the failure means the replica's image is lost to it: only a resync helps.</summary>
    public static bool IsResyncRequired(Exception failure) => Unwrap(failure) switch
    {
        CannotVouchException => true,
        EpochOrderException => true,
        // It names a checkpoint the store can never produce again; a restart would not change that.
        CheckpointUnavailableException => true,
        StorageException or IOException => false,
        // Anything else is a bug or a surprise: restart from disk, where recovery checks everything.
        _ => false,
    };

    /// <summary>Failures in PreStart (opening the store) arrive wrapped.</summary>
    public static Exception Unwrap(Exception failure) =>
        failure is ActorInitializationException { InnerException: { } inner } ? Unwrap(inner) : failure;

    public static SupervisorStrategy Strategy(Action<Exception>? observe = null) =>
        new OneForOneStrategy(MaxRestarts, RestartWindow, e =>
        {
            observe?.Invoke(Unwrap(e));
            return Decide(e);
        });
}
