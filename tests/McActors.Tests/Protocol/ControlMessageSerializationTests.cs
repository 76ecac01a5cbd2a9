using Akka.Configuration;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Protocol;

namespace McActors.Tests.Protocol;

/// <summary>Control messages cross nodes through the shipped binding (src/McActors/reference.conf): Hyperion, round trip intact.</summary>
public sealed class ControlMessageSerializationTests()
    : TestKit(McActorsSettings.DefaultConfig)
{
    [Theory]
    [InlineData(null)]
    [InlineData(0L)]
    [InlineData((3L << 32) + 7)]
    public void LeftReplicaSet_keeps_the_membership_it_is_about(long? attempt)
    {
        var left = new LeftReplicaSet(4, "s2", "did not answer Prepared(9) in time", attempt);
        var serializer = Sys.Serialization.FindSerializerFor(left);
        Assert.IsType<HyperionSerializer>(serializer);
        var back = Sys.Serialization.Deserialize(serializer.ToBinary(left), serializer.Identifier, typeof(LeftReplicaSet));
        Assert.Equal(left, back);
    }
}
