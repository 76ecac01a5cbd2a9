namespace McActors.Replication;

/// <summary>
/// How a secondary's store gets to the checkpoint the coordinator resumes from
/// (<c>AssignSecondary.LastCommitted</c>): the primary streams from the epoch after it.
/// </summary>
/// <param name="RollbackTo">Roll back to this checkpoint first (the store prepared past it).</param>
/// <param name="CommitTo">Then commit it (the cluster committed it; this store had not heard yet).</param>
/// <param name="ResyncReason">Non-null: the store cannot get there; it needs a resync.</param>
public sealed record StoreAlignment(long? RollbackTo, long? CommitTo, string? ResyncReason)
{
    public bool Ready => ResyncReason is null && RollbackTo is null && CommitTo is null;

    /// <param name="newestLogged">
    /// The newest epoch with a rollback log (0 if none): writes of an epoch after the target that
    /// was never prepared (the old primary's open epoch) are in the image too and must be undone.
    /// </param>
    public static StoreAlignment Plan(long committed, long prepared, long target, long newestLogged = 0)
    {
        if (committed > target)
            return Resync($"the store committed checkpoint {committed}, past the cluster's last committed {target}");
        if (prepared < target)
            return Resync($"the store prepared only up to checkpoint {prepared}, the cluster committed {target}");
        return new StoreAlignment(prepared > target || newestLogged > target ? target : null, committed < target ? target : null, null);
    }

    private static StoreAlignment Resync(string reason) => new(null, null, reason);
}
