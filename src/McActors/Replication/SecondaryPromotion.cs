using McActors.Protocol;
using McActors.Storage.Rollback;

namespace McActors.Replication;

/// <summary>
/// Replica → its secondary: become the primary of <see cref="Assignment"/>'s generation. The
/// secondary stops taking the old stream, rolls its store back to the assignment's last committed
/// checkpoint, closes the store and answers <see cref="PromotionReady"/>, then stops; the replica
/// starts a primary on the same image.
/// </summary>
public sealed record PromoteToPrimary(AssignPrimary Assignment);

/// <summary>
/// Secondary → replica: the image is exactly checkpoint <see cref="Checkpoint"/> and closed; the
/// rollback undid <see cref="RolledBackEpochs"/> epochs (blocks and bytes restored, time taken).
/// </summary>
public sealed record PromotionReady(AssignPrimary Assignment, long Checkpoint, long RolledBackEpochs, long RolledBackBlocks,
    long RolledBackBytes, TimeSpan RollbackTime);

/// <summary>
/// What the alignment to a new generation's checkpoint undid, for <see cref="PromotionReady"/>.
/// Plain bookkeeping: the secondary starts it at each new generation and adds every rollback.
/// </summary>
public sealed class RollbackTally
{
    private long _from = -1;

    public long Blocks { get; private set; }

    public long Bytes { get; private set; }

    public TimeSpan Time { get; private set; }

    /// <summary>A new alignment begins: nothing undone yet, the starting point unknown until the first store status.</summary>
    public void Restart()
    {
        _from = -1;
        Blocks = Bytes = 0;
        Time = TimeSpan.Zero;
    }

    /// <summary>The store's state as the alignment sees it first: its newest prepared or logged epoch is where the rollback starts.</summary>
    public void StartAt(long prepared, long newestLogged)
    {
        if (_from < 0)
            _from = Math.Max(prepared, newestLogged);
    }

    public void Add(RollbackResult result)
    {
        Blocks += result.BlocksRestored;
        Bytes += result.BytesRestored;
        Time += result.Elapsed;
    }

    /// <summary>Epochs undone in getting to <paramref name="target"/> (0 if nothing was past it).</summary>
    public long EpochsTo(long target) => Math.Max(0, _from - target);

    public PromotionReady Ready(AssignPrimary assignment, long target) =>
        new(assignment, target, EpochsTo(target), Blocks, Bytes, Time);
}
