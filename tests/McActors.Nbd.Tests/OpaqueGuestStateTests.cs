using McActors.Guests;

namespace McActors.Nbd.Tests;

/// <summary>The opaque guest-state envelope the secondary accepts beside the synthetic guest's state.</summary>
public sealed class OpaqueGuestStateTests
{
    [Fact]
    public void Round_trips_and_every_cut_or_flipped_byte_is_refused()
    {
        var blob = new OpaqueGuestState("nbd", 42, [1, 2, 3, 4]).Serialize();
        var parsed = OpaqueGuestState.Parse(blob);
        Assert.Equal(("nbd", 42L), (parsed.Kind, parsed.Epoch));
        Assert.Equal([1, 2, 3, 4], parsed.Payload);
        Assert.Equal(42, GuestStateBlob.EpochOf(blob));
        for (var cut = 0; cut < blob.Length; cut++)
            Assert.ThrowsAny<GuestStateCorruptException>(() => GuestStateBlob.EpochOf(blob.AsSpan(0, cut)));
        for (var i = 0; i < blob.Length; i++)
        {
            var damaged = (byte[])blob.Clone();
            damaged[i] ^= 0x10;
            Assert.ThrowsAny<GuestStateCorruptException>(() => GuestStateBlob.EpochOf(damaged));
        }
    }

    [Fact]
    public void The_synthetic_guests_state_still_parses_as_before()
    {
        var state = new GuestState(7, 1 << 20, 4096, 3, 10, 40960, 0xabc, [new BlockVersion(1, 2)]);
        Assert.Equal(3, GuestStateBlob.EpochOf(state.Serialize()));
    }
}
