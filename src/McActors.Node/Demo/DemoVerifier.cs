using McActors.Guests;
using McActors.Replication;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Node.Demo;

/// <summary>The verdict on one checkpoint: both replicas hold the same image and guest state, and the image is what the guest state says it must be.</summary>
public sealed record DemoVerdict(bool Verified, string Detail);

/// <summary>
/// Checks, from the files the stopped replicas left, that checkpoint N is the same on both: the
/// secondary's store rolled back to N (a no-op when nothing followed N, as after a guest stop),
/// the primary's image, the guest-state blobs of N on both, each image verified block by block
/// against that state, and the two images compared byte for byte.
/// </summary>
public static class DemoVerifier
{
    private const int CompareChunk = 1 << 20;

    public static DemoVerdict Verify(string primaryDirectory, string secondaryDirectory, long epoch)
    {
        foreach (var dir in new[] { primaryDirectory, secondaryDirectory })
            if (!File.Exists(GuestStateFiles.PathIn(dir, epoch)))
                return new DemoVerdict(false, $"no guest state of checkpoint {epoch} in {dir}");
        var primaryBlob = File.ReadAllBytes(GuestStateFiles.PathIn(primaryDirectory, epoch));
        var secondaryBlob = File.ReadAllBytes(GuestStateFiles.PathIn(secondaryDirectory, epoch));
        if (!primaryBlob.AsSpan().SequenceEqual(secondaryBlob))
            return new DemoVerdict(false, $"the guest states of checkpoint {epoch} differ between primary and secondary");
        var state = GuestState.Parse(primaryBlob);
        if (GuestVerifier.CheckHistory(state) is { } history)
            return new DemoVerdict(false, $"guest state {epoch} does not replay from its seed: {history}");

        var storeDirectory = Path.Combine(secondaryDirectory, SecondaryActor.StoreName);
        var descriptor = VolumeDescriptor.Load(storeDirectory);
        using var store = RollbackStore.Recover(storeDirectory);
        store.RollbackTo(epoch);
        using var primary = VolumeImage.Open(PrimaryVolumeFiles.ImagePath(primaryDirectory), descriptor.SizeBytes, writable: false);

        var onPrimary = GuestVerifier.Verify(state, primary);
        if (!onPrimary.Ok)
            return new DemoVerdict(false, $"primary image at checkpoint {epoch}: {onPrimary.FirstMismatch!.Description}");
        var onSecondary = GuestVerifier.Verify(state, store);
        if (!onSecondary.Ok)
            return new DemoVerdict(false, $"secondary image at checkpoint {epoch}: {onSecondary.FirstMismatch!.Description}");

        var a = new byte[CompareChunk];
        var b = new byte[CompareChunk];
        for (long offset = 0; offset < descriptor.SizeBytes; offset += CompareChunk)
        {
            var length = (int)Math.Min(CompareChunk, descriptor.SizeBytes - offset);
            primary.Read(offset, a.AsSpan(0, length));
            store.Read(offset, b.AsSpan(0, length));
            var same = a.AsSpan(0, length).CommonPrefixLength(b.AsSpan(0, length));
            if (same != length)
                return new DemoVerdict(false, $"images differ at byte {offset + same}");
        }
        return new DemoVerdict(true,
            $"checkpoint {epoch}: {state.WriteCount} guest writes, {state.BlockCount} blocks verified on both replicas, images identical ({descriptor.SizeBytes >> 20} MiB)");
    }
}
