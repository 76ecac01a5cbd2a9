namespace McActors.Node.Chaos;

/// <summary>The one fault of a chaos run.</summary>
public enum ChaosFault
{
    KillPrimary,
    KillSecondary,
    PartitionPrimary,
    PartitionSecondary,
    DiskErrorSecondary,
    SlowSecondary,

    /// <summary>SIGKILL of the arbiter, the oldest node: the coordinator singleton moves to a replica's node and recovers from the journal.</summary>
    KillArbiter,

    // Real network partitions (NetworkFaults: nodes in network namespaces, iptables; root only).

    /// <summary>The primary cut from every other node and the observer; its NBD clients on the host still reach it.</summary>
    PartitionPrimaryNet,

    /// <summary>The coordinator's node (the oldest, the arbiter) and the primary cut together from the majority (3 replicas).</summary>
    PartitionCoordinatorMinority,

    /// <summary>The primary receives nothing from the cluster, and still sends.</summary>
    OneWayPrimaryInbound,

    /// <summary>The primary sends nothing to the cluster, and still receives.</summary>
    OneWayPrimaryOutbound,

    /// <summary>The link between the primary and a secondary cut and healed on a seeded schedule.</summary>
    FlappingPrimaryLink,

    /// <summary>A secondary killed and restarted, then cut from everything while it is being resynced.</summary>
    CutDuringResync,
}

/// <summary>
/// When, relative to the checkpoint pipeline, the fault lands, as seen from outside: right after
/// the coordinator reported a checkpoint in flight (closed, being prepared), right after it
/// reported a new commit (Commit messages on their way), or at a random instant.
/// </summary>
public enum ChaosPhase
{
    Prepare,
    Commit,
    Random,
}

/// <summary>
/// Everything a chaos run does, decided by its seed alone: <c>chaos --seed SEED --runs 1</c> replays
/// it (the same plan; timing on a real machine is never identical, which is the point of many runs).
/// </summary>
public sealed record ChaosPlan(
    long Seed,
    ChaosFault Fault,
    ChaosPhase Phase,
    int Replicas,
    int SecondaryIndex,
    TimeSpan Warmup,
    TimeSpan RandomDelay,
    int GuestSeed)
{
    /// <summary>Epoch interval of every chaos run: short, so that checkpoints are nearly always in flight.</summary>
    public const int EpochMs = 50;

    public string Label => Fault switch
    {
        ChaosFault.KillPrimary => $"kill-primary@{Phase.ToString().ToLowerInvariant()}",
        ChaosFault.KillSecondary => $"kill-secondary@{Phase.ToString().ToLowerInvariant()}",
        ChaosFault.PartitionPrimary => $"partition-primary@{Phase.ToString().ToLowerInvariant()}",
        ChaosFault.PartitionSecondary => $"partition-secondary@{Phase.ToString().ToLowerInvariant()}",
        ChaosFault.DiskErrorSecondary => "disk-error-secondary",
        ChaosFault.SlowSecondary => "slow-secondary",
        ChaosFault.KillArbiter => $"kill-arbiter@{Phase.ToString().ToLowerInvariant()}",
        _ when NetworkFaults.TargetsPrimary(Fault) => $"{NameOf(Fault)}@{Phase.ToString().ToLowerInvariant()}",
        _ when NetworkFaults.Is(Fault) => NameOf(Fault),
        _ => Fault.ToString(),
    };

    /// <summary>The fault's name on the command line (<c>chaos --fault</c>): its label without the phase.</summary>
    public static string NameOf(ChaosFault fault) =>
        string.Concat(fault.ToString().Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    /// <summary>The seed of run <paramref name="index"/> (0-based) of <c>chaos --seed S</c>: run 0 has S itself, so a printed run seed replays as <c>--seed</c>.</summary>
    public static long RunSeed(long seed, int index) => index == 0 ? seed : (long)(SplitMix64((ulong)seed + (ulong)index) & long.MaxValue);

    public static ChaosPlan From(long seed, IReadOnlyList<ChaosFault> faults)
    {
        var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var fault = faults[random.Next(faults.Count)];
        var phase = (ChaosPhase)random.Next(3);
        var replicas = NetworkFaults.Replicas(fault, random.Next(2, 4)); // arbiter + 2 or 3 replicas
        return new ChaosPlan(
            seed,
            fault,
            phase,
            replicas,
            random.Next(replicas - 1),
            TimeSpan.FromMilliseconds(random.Next(500, 2000)),
            TimeSpan.FromMilliseconds(random.Next(EpochMs * 4)),
            random.Next(1, int.MaxValue));
    }

    private static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
