using Akka.Actor;
using McActors.Configuration;
using McActors.Guests;
using McActors.Protocol;

namespace McActors.Testing.Xunit.Guests;

/// <summary>Builds the <see cref="GuestContext"/> a primary would give a guest, with a TestKit probe (or any actor) as its disk.</summary>
public static class TestGuestContext
{
    public const long DefaultVolumeSize = 4L << 20;

    /// <summary>
    /// A context whose disk is <paramref name="disk"/>, for a fresh volume of <paramref name="sizeBytes"/>;
    /// settings from <paramref name="system"/>'s <c>mcactors</c> section over the library's defaults.
    /// </summary>
    public static GuestContext Create(ActorSystem system, IActorRef disk, long sizeBytes = DefaultVolumeSize, int blockSize = 4096,
        string? dataDirectory = null, string replicaId = "test-replica")
    {
        return new GuestContext(disk, new VolumeSpec(Guid.NewGuid(), sizeBytes, blockSize), replicaId,
            dataDirectory ?? Path.GetTempPath(), McActorsSettings.From(system.Settings.Config));
    }
}
