using Akka.Actor;
using McActors.Guests;
using McActors.Testing.Xunit.Guests;
using Xunit.Abstractions;

namespace McActors.Nbd.Tests;

/// <summary>The NBD guest passes the guest conformance spec; an NBD client's WRITE makes it write.</summary>
public sealed class NbdGuestConformanceTests(ITestOutputHelper output) : GuestConformanceSpec(output)
{
    protected override Props GuestProps(GuestContext context) =>
        NbdGuestActor.Props(context, new NbdExportSlot("conformance", "test"), 4096);

    protected override void MakeItWrite(IActorRef guest) =>
        guest.Tell(new NbdWriteRequest(0, new byte[4096], Fua: false, new TaskCompletionSource()));
}
