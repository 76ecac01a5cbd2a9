using Akka.Actor;
using McActors.Guests;
using McActors.Testing.Xunit.Guests;
using Xunit.Abstractions;

namespace MyCompany.Storage.Tests;

/// <summary>
/// What a user writes against the packed test kit alone: a guest of their own (here a counter that
/// writes its count to block 0 on every resume) must pass the guest conformance spec.
/// </summary>
public sealed class MyGuestConformanceTests(ITestOutputHelper output) : GuestConformanceSpec(output)
{
    protected override Props GuestProps(GuestContext context) => Props.Create(() => new CounterGuest(context));

    private sealed class CounterGuest(GuestContext guest) : GuestActorBase(guest)
    {
        private long _count;

        protected override byte[] CaptureState(long epoch) => new OpaqueGuestState("counter", epoch, BitConverter.GetBytes(_count)).Serialize();

        protected override void RestoreState(long epoch, byte[] state) =>
            _count = BitConverter.ToInt64(OpaqueGuestState.Parse(state).Payload);

        protected override void OnResumed(long epoch)
        {
            _count++;
            var block = new byte[Guest.Volume.BlockSize];
            BitConverter.TryWriteBytes(block, _count);
            Write(0, block);
        }
    }
}
