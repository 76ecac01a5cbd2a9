using Akka.Actor;
using McActors.Guests;
using McActors.Testing.Xunit.Guests;
using Xunit.Abstractions;

namespace McActors.Tests.Guests;

/// <summary>The built-in synthetic guest passes the guest conformance spec (it writes on its own once resumed).</summary>
public sealed class SyntheticGuestConformanceTests(ITestOutputHelper output) : GuestConformanceSpec(output)
{
    protected override Props GuestProps(GuestContext context) => SyntheticGuestActor.Props(context);
}
