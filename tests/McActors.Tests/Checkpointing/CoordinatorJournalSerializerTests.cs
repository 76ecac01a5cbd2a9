using System.Runtime.Serialization;
using System.Text;
using Akka.Configuration;
using Akka.Serialization;
using McActors.Checkpointing;
using McActors.Configuration;
using McActors.Protocol;

namespace McActors.Tests.Checkpointing;

/// <summary>The journal's rows: a fixed serializer, versioned manifests, no CLR type names.</summary>
public sealed class CoordinatorJournalSerializerTests() : Akka.TestKit.Xunit2.TestKit(
    McActorsSettings.DefaultConfig)
{
    private static readonly object[] Samples =
    [
        new VolumeCreated(new VolumeSpec(Guid.NewGuid(), 32L << 20, 4096)),
        new RolesAssigned(3, "replica-1", ["replica-2", "replica-3"], "akka.tcp://mcactors@127.0.0.1:4054"),
        new CheckpointCommitted(3, 120, 5000, 20_480_000, 2),
        new SecondaryAdded(3, "replica-3", 118, 119, 2),
        new SecondaryDropped(3, "replica-2", 121, "prepare timed out"),
        new CoordinatorTookOver(4, "akka.tcp://mcactors@127.0.0.1:4053"),
        CoordinatorState.Empty with { Generation = 3, Primary = "replica-1", Secondaries = ["replica-2"], Joined = [new SecondaryJoin("replica-2", 7, 1)], Failovers = 2 },
    ];

    [Fact]
    public void Every_journal_type_has_a_versioned_manifest_and_a_sample_here()
    {
        var journalTypes = typeof(ICoordinatorEvent).Assembly.GetTypes()
            .Where(t => t.IsClass && !t.IsAbstract && typeof(ICoordinatorEvent).IsAssignableFrom(t))
            .Append(typeof(CoordinatorState))
            .ToHashSet();
        Assert.Equal(journalTypes, CoordinatorJournalSerializer.Manifests.Values.ToHashSet());
        Assert.Equal(journalTypes, Samples.Select(s => s.GetType()).ToHashSet());
        Assert.All(CoordinatorJournalSerializer.Manifests.Keys, m => Assert.Matches(@"^[a-z-]+\.v\d+$", m));
    }

    [Fact]
    public void Every_sample_goes_through_the_journal_serializer_and_reads_back_the_same()
    {
        foreach (var sample in Samples)
        {
            var serializer = Assert.IsType<CoordinatorJournalSerializer>(Sys.Serialization.FindSerializerFor(sample));
            Assert.Equal(CoordinatorJournalSerializer.Id, serializer.Identifier);
            var bytes = serializer.ToBinary(sample);
            var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, sample);
            Assert.DoesNotContain("McActors.", Encoding.UTF8.GetString(bytes)); // no type names in a row
            var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
            Assert.IsType(sample.GetType(), back);
            Assert.Equal(bytes, serializer.ToBinary(back));
        }
    }

    [Fact]
    public void A_row_of_an_unknown_manifest_or_damaged_json_fails_naming_the_manifest()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(VolumeCreated));
        Assert.Contains("'volume-created.v9'", Assert.Throws<SerializationException>(() => serializer.FromBinary("{}"u8.ToArray(), "volume-created.v9")).Message);
        Assert.Contains("'roles-assigned.v1'", Assert.Throws<SerializationException>(() => serializer.FromBinary("{\"Generation\":"u8.ToArray(), "roles-assigned.v1")).Message);
    }
}
