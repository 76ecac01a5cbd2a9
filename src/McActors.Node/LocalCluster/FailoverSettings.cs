namespace McActors.Node.LocalCluster;

/// <summary>Settings the local clusters that kill their primary on purpose (chaos, bench failover) add before the user's --set.</summary>
public static class FailoverSettings
{
    /// <summary>
    /// Known issue (coordinator): a Prepare sent just before the primary dies can never be answered
    /// (its marker and state never come), and at the default 2 s the secondary is dropped for it
    /// before the primary is downed (~2-2.5 s after a kill on this machine, more under load),
    /// leaving nobody to fail over to (chaos seed 20251150, run 1). Until the coordinator stops
    /// dropping secondaries while the primary is unreachable, the timeout stays above detection +
    /// downing in these clusters.
    /// </summary>
    public const string PrepareTimeoutAboveDowning = "mcactors.checkpoint.prepare-timeout = 5s";
}
