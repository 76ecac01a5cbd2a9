using Akka.Actor;
using McActors.Guests;
using McActors.Testing.Xunit.Guests;
using Xunit.Abstractions;

namespace McActors.Samples.KeyValue.Tests;

/// <summary>The key-value guest passes the guest conformance spec; a put makes it write.</summary>
public sealed class KeyValueConformanceTests(ITestOutputHelper output) : GuestConformanceSpec(output)
{
    protected override Props GuestProps(GuestContext context) => KeyValueGuestActor.Props(context, ActorRefs.Nobody);

    protected override void MakeItWrite(IActorRef guest) => guest.Tell(new Put("conformance", "value"), ActorRefs.Nobody);
}
