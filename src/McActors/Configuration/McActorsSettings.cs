using Akka.Configuration;
using McActors.Storage.Rollback;

namespace McActors.Configuration;

/// <summary>The <c>mcactors</c> section of the configuration, parsed and checked once.</summary>
public sealed record McActorsSettings(
    int BlockSize,
    int WriteAheadBatchBytes,
    TimeSpan EpochInterval,
    int MaxInFlight,
    TimeSpan PrepareTimeout,
    int MinReplicas)
{
    public static McActorsSettings From(Config config)
    {
        var c = config.GetConfig("mcactors") ?? throw new ConfigurationException("the mcactors section is missing");
        var settings = new McActorsSettings(
            BlockSize: checked((int)Bytes(c, "storage.block-size")),
            WriteAheadBatchBytes: checked((int)Bytes(c, "storage.write-ahead-batch")),
            EpochInterval: Duration(c, "checkpoint.epoch-interval"),
            MaxInFlight: c.GetInt("checkpoint.max-in-flight"),
            PrepareTimeout: Duration(c, "checkpoint.prepare-timeout"),
            MinReplicas: c.GetInt("checkpoint.min-replicas"));
        settings.Validate();
        return settings;
    }

    public RollbackStoreOptions StoreOptions => new() { WriteAheadBatchBytes = WriteAheadBatchBytes };

    private void Validate()
    {
        Require(BlockSize >= 512 && BlockSize <= 1 << 20 && (BlockSize & (BlockSize - 1)) == 0,
            "mcactors.storage.block-size", $"{BlockSize} B is not a power of two between 512 B and 1 MiB");
        Require(WriteAheadBatchBytes >= 64 << 10 && WriteAheadBatchBytes <= 256 << 20,
            "mcactors.storage.write-ahead-batch", $"{WriteAheadBatchBytes} B is not between 64 KiB and 256 MiB");
        Require(EpochInterval >= TimeSpan.FromMilliseconds(1), "mcactors.checkpoint.epoch-interval", $"{EpochInterval} is under 1 ms");
        Require(MaxInFlight >= 1, "mcactors.checkpoint.max-in-flight", $"{MaxInFlight} is under 1");
        Require(PrepareTimeout > TimeSpan.Zero, "mcactors.checkpoint.prepare-timeout", $"{PrepareTimeout} is not positive");
        Require(MinReplicas >= 0, "mcactors.checkpoint.min-replicas", $"{MinReplicas} is negative");
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
