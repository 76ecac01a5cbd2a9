using Akka.Configuration;
using McActors.Checkpointing.Policies;
using McActors.DataPlane;
using McActors.Storage.Io;
using McActors.Storage.Rollback;

namespace McActors.Configuration;

/// <summary>The <c>mcactors</c> section of the configuration, parsed and checked once.</summary>
public sealed record McActorsSettings(
    int BlockSize,
    int WriteAheadBatchBytes,
    TimeSpan EpochInterval,
    int MaxInFlight,
    TimeSpan PrepareTimeout,
    int MinReplicas,
    DataPlaneOptions DataPlane)
{
    /// <summary>Dispatcher for actors that block on file I/O.</summary>
    public const string ReplicaDispatcher = "mcactors.replica-dispatcher";

    /// <summary>Size of the volume the coordinator creates once (mcactors.volume.size), bytes.</summary>
    public long VolumeSize { get; init; } = 256L << 20;

    /// <summary>Replicas that must register before the coordinator assigns the first roles (mcactors.cluster.replicas).</summary>
    public int Replicas { get; init; } = 2;

    /// <summary>How often the coordinator resends a role assignment not yet answered with RoleAssumed.</summary>
    public TimeSpan AssignRetry { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When epochs close (mcactors.checkpoint.policy): a built-in policy's name or a type name; see CheckpointPolicies.</summary>
    public string CheckpointPolicy { get; init; } = FixedIntervalPolicy.Name;

    /// <summary>The dirty-bytes policy closes an epoch holding this many bytes of writes (mcactors.checkpoint.dirty-bytes.threshold).</summary>
    public long DirtyBytesThreshold { get; init; } = 16L << 20;

    /// <summary>The mcactors.checkpoint section, for the keys of a custom checkpoint policy.</summary>
    public Config CheckpointSection { get; init; } = Config.Empty;

    /// <summary>Bytes of its image the primary scans per step of a resync copy, between guest writes.</summary>
    public long ResyncScanStep { get; init; } = 4L << 20;

    /// <summary>How often a primary whose secondaries hold the checkpoints fsyncs its image in the background, to see a failed writeback (mcactors.primary.image-sync-interval).</summary>
    public TimeSpan ImageSyncInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A node whose process was paused longer than this downs itself (it may have been downed meanwhile).</summary>
    public TimeSpan PauseLimit { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>A resync that reports no progress this long is forgotten (the replica is tried again).</summary>
    public TimeSpan ResyncStallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a new generation waits for a secondary's RoleAssumed before leaving it out.</summary>
    public TimeSpan AssignTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>After a coordinator move, how long a missing primary may take to register before a failover.</summary>
    public TimeSpan PrimaryRejoinTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>After a failed promotion, how long before the coordinator promotes that replica from its own store again (mcactors.coordinator.failed-promotion-backoff.min), doubling up to max.</summary>
    public TimeSpan FailedPromotionBackoffMin { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan FailedPromotionBackoffMax { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>The coordinator saves a snapshot of its state after this many persisted events.</summary>
    public int SnapshotEvery { get; init; } = 1000;

    /// <summary>A stopped coordinator (a journal write failed) starts again after this, doubling up to <see cref="CoordinatorRestartMax"/>.</summary>
    public TimeSpan CoordinatorRestartMin { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest wait before a stopped coordinator starts again (mcactors.coordinator.restart-backoff.max).</summary>
    public TimeSpan CoordinatorRestartMax { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Random part added to each restart wait, as a fraction of it (mcactors.coordinator.restart-backoff.random-factor).</summary>
    public double CoordinatorRestartRandomFactor { get; init; } = 0.2;

    /// <summary>The built-in synthetic guest (mcactors.guest): seed, write window, and an optional cap on its writes.</summary>
    public long GuestSeed { get; init; } = 1;

    public int GuestMaxOutstanding { get; init; } = 8;

    /// <summary>Writes the guest makes before it idles (still answering pause/capture); null = no cap.</summary>
    public long? GuestWriteLimit { get; init; }

    /// <summary>
    /// The library's defaults: its embedded <c>reference.conf</c> (every <c>mcactors</c> key, the
    /// replica dispatcher, the serializer bindings). <see cref="From"/> falls back on it, and so does
    /// every node's configuration (HoconFiles.Load), so a user's config never repeats a default.
    /// </summary>
    public static Config DefaultConfig { get; } = HoconFiles.FromResource(typeof(McActorsSettings).Assembly, "McActors.reference.conf");

    /// <summary>The settings in <paramref name="config"/>'s <c>mcactors</c> section, over <see cref="DefaultConfig"/>.</summary>
    /// <summary>mcactors.events.relay-checkpoints: this node's EventStream also gets every CheckpointCommitted.</summary>
    public bool RelayCheckpointEvents { get; init; }

    public static McActorsSettings From(Config config)
    {
        var c = (ReferenceEquals(config, DefaultConfig) ? config : config.WithFallback(DefaultConfig)).GetConfig("mcactors");
        var settings = new McActorsSettings(
            BlockSize: checked((int)Bytes(c, "storage.block-size")),
            WriteAheadBatchBytes: checked((int)Bytes(c, "storage.write-ahead-batch")),
            EpochInterval: Duration(c, "checkpoint.epoch-interval"),
            MaxInFlight: c.GetInt("checkpoint.max-in-flight"),
            PrepareTimeout: Duration(c, "checkpoint.prepare-timeout"),
            MinReplicas: c.GetInt("checkpoint.min-replicas"),
            DataPlane: new DataPlaneOptions
            {
                WindowBytes = Bytes(c, "data-plane.window"),
                AckIntervalBytes = checked((int)Bytes(c, "data-plane.ack-interval")),
                MaxPayloadBytes = checked((int)Bytes(c, "data-plane.max-payload")),
                HandshakeTimeout = Duration(c, "data-plane.handshake-timeout"),
            })
        {
            VolumeSize = Bytes(c, "volume.size"),
            CheckpointPolicy = Read(c, "checkpoint.policy", () => c.GetString("checkpoint.policy")),
            DirtyBytesThreshold = Bytes(c, "checkpoint.dirty-bytes.threshold"),
            CheckpointSection = c.GetConfig("checkpoint"),
            WritebackBytes = Bytes(c, "storage.writeback-interval"),
            GuestSeed = Read(c, "guest.seed", () => c.GetLong("guest.seed")),
            RelayCheckpointEvents = Read(c, "events.relay-checkpoints", () => c.GetBoolean("events.relay-checkpoints")),
            GuestMaxOutstanding = Read(c, "guest.max-outstanding", () => c.GetInt("guest.max-outstanding")),
            GuestWriteLimit = Read(c, "guest.write-limit", () => c.GetString("guest.write-limit") is "off" or "" ? (long?)null : c.GetLong("guest.write-limit")),
            Replicas = Read(c, "cluster.replicas", () => c.GetInt("cluster.replicas")),
            AssignRetry = Duration(c, "coordinator.assign-retry"),
            AssignTimeout = Duration(c, "coordinator.assign-timeout"),
            ResyncScanStep = Bytes(c, "resync.scan-step"),
            ResyncStallTimeout = Duration(c, "resync.stall-timeout"),
            PauseLimit = Duration(c, "node.pause-limit"),
            ImageSyncInterval = Duration(c, "primary.image-sync-interval"),
            PrimaryRejoinTimeout = Duration(c, "coordinator.primary-rejoin-timeout"),
            FailedPromotionBackoffMin = Duration(c, "coordinator.failed-promotion-backoff.min"),
            FailedPromotionBackoffMax = Duration(c, "coordinator.failed-promotion-backoff.max"),
            SnapshotEvery = Read(c, "coordinator.snapshot-every", () => c.GetInt("coordinator.snapshot-every")),
            CoordinatorRestartMin = Duration(c, "coordinator.restart-backoff.min"),
            CoordinatorRestartMax = Duration(c, "coordinator.restart-backoff.max"),
            CoordinatorRestartRandomFactor = Read(c, "coordinator.restart-backoff.random-factor", () => c.GetDouble("coordinator.restart-backoff.random-factor")),
        };
        settings.Validate();
        return settings;
    }

    public RollbackStoreOptions StoreOptions => new() { WriteAheadBatchBytes = WriteAheadBatchBytes, WritebackBytes = WritebackBytes, Faults = StoreFaults };

    /// <summary>Fault injection into the secondary's store disk (tests, chaos runs with mcactors.testing.fault-injection = on); null in production.</summary>
    public IStorageFaults? StoreFaults { get; init; }

    /// <summary>mcactors.storage.writeback-interval: image bytes between background writeback starts on a secondary (0 = off).</summary>
    public long WritebackBytes { get; init; } = 32L << 20;

    private void Validate()
    {
        Require(BlockSize >= 512 && BlockSize <= 1 << 20 && (BlockSize & (BlockSize - 1)) == 0,
            "mcactors.storage.block-size", $"{BlockSize} B is not a power of two between 512 B and 1 MiB");
        Require(WriteAheadBatchBytes >= 64 << 10 && WriteAheadBatchBytes <= 256 << 20,
            "mcactors.storage.write-ahead-batch", $"{WriteAheadBatchBytes} B is not between 64 KiB and 256 MiB");
        Require(EpochInterval >= TimeSpan.FromMilliseconds(1), "mcactors.checkpoint.epoch-interval", $"{EpochInterval} is under 1 ms");
        Require(MaxInFlight >= 1, "mcactors.checkpoint.max-in-flight", $"{MaxInFlight} is under 1");
        Require(DirtyBytesThreshold >= 1, "mcactors.checkpoint.dirty-bytes.threshold", $"{DirtyBytesThreshold} B is under 1 B");
        CheckpointPolicies.Validate(CheckpointPolicy);
        Require(PrepareTimeout > TimeSpan.Zero, "mcactors.checkpoint.prepare-timeout", $"{PrepareTimeout} is not positive");
        Require(MinReplicas >= 0, "mcactors.checkpoint.min-replicas", $"{MinReplicas} is negative");
        Require(VolumeSize > 0 && VolumeSize % BlockSize == 0 && VolumeSize % 512 == 0,
            "mcactors.volume.size", $"{VolumeSize} B is not a positive multiple of the block size ({BlockSize} B)");
        Require(Replicas >= 1, "mcactors.cluster.replicas", $"{Replicas} is under 1");
        Require(MinReplicas <= Replicas - 1, "mcactors.checkpoint.min-replicas",
            $"{MinReplicas} is more than the {Replicas - 1} secondaries mcactors.cluster.replicas = {Replicas} gives: no FLUSH could ever be acknowledged (set it to 0 for a single replica)");
        Require(GuestMaxOutstanding >= 1, "mcactors.guest.max-outstanding", $"{GuestMaxOutstanding} is under 1");
        Require(GuestWriteLimit is null or >= 0, "mcactors.guest.write-limit", $"{GuestWriteLimit} is negative");
        Require(AssignRetry > TimeSpan.Zero, "mcactors.coordinator.assign-retry", $"{AssignRetry} is not positive");
        Require(ResyncScanStep >= BlockSize, "mcactors.resync.scan-step", $"{ResyncScanStep} B is under one block ({BlockSize} B)");
        Require(PauseLimit > TimeSpan.Zero, "mcactors.node.pause-limit", $"{PauseLimit} is not positive");
        Require(ImageSyncInterval > TimeSpan.Zero, "mcactors.primary.image-sync-interval", $"{ImageSyncInterval} is not positive");
        Require(ResyncStallTimeout > TimeSpan.Zero, "mcactors.resync.stall-timeout", $"{ResyncStallTimeout} is not positive");
        Require(AssignTimeout > TimeSpan.Zero, "mcactors.coordinator.assign-timeout", $"{AssignTimeout} is not positive");
        Require(PrimaryRejoinTimeout > TimeSpan.Zero, "mcactors.coordinator.primary-rejoin-timeout", $"{PrimaryRejoinTimeout} is not positive");
        Require(FailedPromotionBackoffMin > TimeSpan.Zero && FailedPromotionBackoffMax >= FailedPromotionBackoffMin, "mcactors.coordinator.failed-promotion-backoff",
            $"min {FailedPromotionBackoffMin} must be positive and at most max {FailedPromotionBackoffMax}");
        Require(SnapshotEvery >= 1, "mcactors.coordinator.snapshot-every", $"{SnapshotEvery} is under 1");
        Require(CoordinatorRestartMin > TimeSpan.Zero, "mcactors.coordinator.restart-backoff.min", $"{CoordinatorRestartMin} is not positive");
        Require(CoordinatorRestartMax >= CoordinatorRestartMin, "mcactors.coordinator.restart-backoff.max",
            $"{CoordinatorRestartMax} is under restart-backoff.min ({CoordinatorRestartMin})");
        Require(CoordinatorRestartRandomFactor is >= 0 and <= 1, "mcactors.coordinator.restart-backoff.random-factor",
            $"{CoordinatorRestartRandomFactor} is not within 0..1");
        try
        {
            DataPlane.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException($"mcactors.data-plane: {e.Message}");
        }
    }

    private static void Require(bool ok, string key, string problem)
    {
        if (!ok)
            throw new ConfigurationException($"{key}: {problem}");
    }

    private static long Bytes(Config c, string key) => Read(c, key, () => c.GetByteSize(key) ?? throw new ConfigurationException("missing"));

    private static TimeSpan Duration(Config c, string key) => Read(c, key, () => c.GetTimeSpan(key, null, allowInfinite: false));

    private static T Read<T>(Config c, string key, Func<T> read)
    {
        if (!c.HasPath(key))
            throw new ConfigurationException($"mcactors.{key} is missing");
        try
        {
            return read();
        }
        catch (Exception e) when (e is not ConfigurationException)
        {
            throw new ConfigurationException($"mcactors.{key}: '{c.GetString(key)}' is not valid ({e.Message})");
        }
    }
}
