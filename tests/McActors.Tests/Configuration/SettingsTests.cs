using Akka.Configuration;
using McActors.Configuration;

namespace McActors.Tests.Configuration;

public sealed class SettingsTests
{
    [Fact]
    public void The_shipped_hocon_files_parse_into_the_documented_defaults()
    {
        var settings = McActorsSettings.From(HoconFiles.Load());
        Assert.Equal(4096, settings.BlockSize);
        Assert.Equal(4 << 20, settings.WriteAheadBatchBytes);
        Assert.Equal(TimeSpan.FromMilliseconds(100), settings.EpochInterval);
        Assert.Equal(4, settings.MaxInFlight);
        Assert.Equal((TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10), 0.2),
            (settings.CoordinatorRestartMin, settings.CoordinatorRestartMax, settings.CoordinatorRestartRandomFactor));
        var config = HoconFiles.Load();
        Assert.Equal("keep-majority", config.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Equal("SQLite.MS", config.GetString("akka.persistence.journal.sql.provider-name"));
    }

    [Fact]
    public void A_configuration_without_any_mcactors_keys_gets_every_default_from_the_embedded_reference()
    {
        // What a NuGet consumer has: no hocon/ folder, only their own akka settings.
        var bare = McActorsSettings.From(ConfigurationFactory.ParseString("akka.loglevel = INFO"));
        var shipped = McActorsSettings.From(HoconFiles.Load());
        Assert.Equal((shipped.BlockSize, shipped.EpochInterval, shipped.VolumeSize, shipped.DataPlane, shipped.CheckpointPolicy),
            (bare.BlockSize, bare.EpochInterval, bare.VolumeSize, bare.DataPlane, bare.CheckpointPolicy));
        Assert.Equal("thread-pool-executor", McActorsSettings.DefaultConfig.GetString("mcactors.replica-dispatcher.executor"));
        Assert.Equal("hyperion", McActorsSettings.DefaultConfig.GetString("akka.actor.serialization-bindings.\"McActors.Protocol.IControlMessage, McActors\""));
    }

    [Fact]
    public void Command_line_overrides_win()
    {
        var settings = McActorsSettings.From(HoconFiles.Load(["mcactors.checkpoint.epoch-interval=20ms", "mcactors.storage.block-size = 64 KiB"]));
        Assert.Equal(TimeSpan.FromMilliseconds(20), settings.EpochInterval);
        Assert.Equal(65536, settings.BlockSize);
    }

    [Theory]
    [InlineData("mcactors.storage.block-size=3000", "mcactors.storage.block-size")]
    [InlineData("mcactors.checkpoint.max-in-flight=0", "mcactors.checkpoint.max-in-flight")]
    [InlineData("mcactors.checkpoint.epoch-interval=soon", "mcactors.checkpoint.epoch-interval")]
    [InlineData("no-equals-sign", "key=value")]
    [InlineData("mcactors.coordinator.restart-backoff.random-factor=2", "mcactors.coordinator.restart-backoff.random-factor")]
    [InlineData("mcactors.coordinator.restart-backoff.max=100ms", "mcactors.coordinator.restart-backoff.max")]
    [InlineData("mcactors.checkpoint.min-replicas=2", "mcactors.checkpoint.min-replicas")]
    public void A_bad_value_is_refused_with_the_key_named(string pair, string named)
    {
        var e = Assert.Throws<ConfigurationException>(() => McActorsSettings.From(HoconFiles.Load([pair])));
        Assert.Contains(named, e.Message);
    }
}
