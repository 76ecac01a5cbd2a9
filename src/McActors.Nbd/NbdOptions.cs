using Akka.Configuration;
using McActors.Configuration;

namespace McActors.Nbd;

/// <summary>The NBD server's settings, from <c>mcactors.nbd</c> (defaults in src/McActors.Nbd/reference.conf).</summary>
public sealed record NbdOptions(
    string ExportName,
    int MaxPayloadBytes,
    int MaxOptionBytes,
    int MinBlockSize,
    int PreferredBlockSize,
    int MaxRequestsInFlight,
    long MaxBytesInFlight,
    TimeSpan HandshakeTimeout,
    int ZeroChunkBytes,
    int MaxConnections = 16)
{
    public const string Path = "mcactors.nbd";

    /// <summary>The defaults: McActors.Nbd's embedded <c>reference.conf</c>, under whatever <see cref="From"/> is given.</summary>
    public static Config DefaultConfig { get; } = HoconFiles.FromResource(typeof(NbdOptions).Assembly, "McActors.Nbd.reference.conf");

    public static NbdOptions From(Config config)
    {
        var c = (ReferenceEquals(config, DefaultConfig) ? config : config.WithFallback(DefaultConfig)).GetConfig(Path);
        var options = new NbdOptions(
            c.GetString("export-name"),
            checked((int)c.GetByteSize("max-payload")!.Value),
            checked((int)c.GetByteSize("max-option-length")!.Value),
            checked((int)c.GetByteSize("min-block-size")!.Value),
            checked((int)c.GetByteSize("preferred-block-size")!.Value),
            c.GetInt("max-requests-in-flight"),
            c.GetByteSize("max-bytes-in-flight")!.Value,
            c.GetTimeSpan("handshake-timeout"),
            checked((int)c.GetByteSize("zero-chunk")!.Value),
            c.GetInt("max-connections"));
        options.Validate();
        return options;
    }

    public void Validate()
    {
        static bool Pow2(long v) => v > 0 && (v & (v - 1)) == 0;
        if (!Pow2(MinBlockSize) || MinBlockSize > 65536)
            throw new ConfigurationException($"{Path}.min-block-size {MinBlockSize} must be a power of two ≤ 64 KiB");
        if (!Pow2(PreferredBlockSize) || PreferredBlockSize < Math.Max(MinBlockSize, 512))
            throw new ConfigurationException($"{Path}.preferred-block-size {PreferredBlockSize} must be a power of two ≥ the minimum and 512");
        if (MaxPayloadBytes < PreferredBlockSize || MaxPayloadBytes % MinBlockSize != 0)
            throw new ConfigurationException($"{Path}.max-payload {MaxPayloadBytes} must be a multiple of the minimum block size, at least the preferred one");
        if (MaxRequestsInFlight < 1 || MaxBytesInFlight < MaxPayloadBytes)
            throw new ConfigurationException($"{Path}: max-requests-in-flight must be ≥ 1 and max-bytes-in-flight ≥ max-payload");
        if (ZeroChunkBytes < MinBlockSize || ZeroChunkBytes > MaxPayloadBytes || ZeroChunkBytes % MinBlockSize != 0)
            throw new ConfigurationException($"{Path}.zero-chunk {ZeroChunkBytes} must be a multiple of the minimum block size within max-payload");
        if (MaxConnections < 1)
            throw new ConfigurationException($"{Path}.max-connections {MaxConnections} must be at least 1");
        if (MaxOptionBytes < 4096 + 8)
            throw new ConfigurationException($"{Path}.max-option-length must allow a 4096-byte export name");
    }
}
