using Akka.Configuration;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Events;
using McActors.Protocol;

namespace McActors.Tests.Events;

/// <summary>Events cross nodes like the other control messages: through the shipped binding (src/McActors/reference.conf), round trip intact.</summary>
public sealed class EventSerializationTests()
    : TestKit(McActorsSettings.DefaultConfig)
{
    public static TheoryData<IMcActorsEvent> Events()
    {
        var at = new DateTime(2026, 12, 3, 12, 0, 0, DateTimeKind.Utc);
        return
        [
            new CheckpointCommitted(3, 41, TimeSpan.FromMilliseconds(12.5)),
            new CheckpointCommitted(3, 42, null),
            new ReplicaAdded(3, "s3", 43),
            new ReplicaDropped(3, "s2", 40, "no Prepared(40) within 5000 ms"),
            new McActors.Events.ResyncProgress(3, "s3", 1 << 20, 4 << 20, 4096),
            new McActors.Events.ResyncCompleted(3, "s3", 43),
            new FailoverStarted(4, "p", "s2", 42, "terminated"),
            new FailoverCompleted(4, new FailoverReport(4, "p", "s2", 42, at, at, at, at, at.AddSeconds(1), 1, 10, 40960, 1.5)),
        ];
    }

    [Theory]
    [MemberData(nameof(Events))]
    public void An_event_round_trips_through_the_control_message_serializer(IMcActorsEvent e)
    {
        var serializer = Sys.Serialization.FindSerializerFor(e);
        Assert.IsType<HyperionSerializer>(serializer);
        var back = Sys.Serialization.Deserialize(serializer.ToBinary(e), serializer.Identifier, e.GetType());
        Assert.Equal(e, back);
    }
}
