using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using McActors.Storage;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;

namespace McActors.Node.Demo;

/// <summary>The verdict on one checkpoint: every replica holds the same image and guest state, and the image is what the guest state says it must be.</summary>
public sealed record DemoVerdict(bool Verified, string Detail);

/// <summary>
/// Checks, from the files the stopped replicas left, that checkpoint N is the same on all of them:
/// the primary's image (<c>store/volume.img</c>, whatever role it had before) against its guest
/// state N, replayed from its seed; then each secondary's store rolled back to N (a no-op when
/// nothing followed N, as after a guest stop), its guest state N byte-identical to the primary's,
/// its image verified against that state and compared byte for byte with the primary's.
/// </summary>
public static class DemoVerifier
{
    private const int CompareChunk = 1 << 20;

    public static DemoVerdict Verify(string primaryDirectory, string secondaryDirectory, long epoch) =>
        Verify(primaryDirectory, [secondaryDirectory], epoch);

    /// <summary>A local cluster's final primary and in-sync secondaries (node directories under <paramref name="dataDirectory"/>), as its coordinator last reported them.</summary>
    public static DemoVerdict Verify(string dataDirectory, CoordinatorStatus final, long epoch) =>
        final.Primary is { } primary
            ? Verify(Path.Combine(dataDirectory, primary), [.. final.SecondariesOf(epoch).Select(s => Path.Combine(dataDirectory, s))], epoch)
            : new DemoVerdict(false, "no primary at the end");

    public static DemoVerdict Verify(string primaryDirectory, IReadOnlyList<string> secondaryDirectories, long epoch)
    {
        var primaryStatePath = GuestStateFiles.PathIn(primaryDirectory, epoch);
        if (!File.Exists(primaryStatePath))
            return new DemoVerdict(false, $"no guest state of checkpoint {epoch} in {primaryDirectory}");
        var primaryBlob = File.ReadAllBytes(primaryStatePath);
        var state = GuestState.Parse(primaryBlob);
        if (GuestVerifier.CheckHistory(state) is { } history)
            return new DemoVerdict(false, $"guest state {epoch} does not replay from its seed: {history}");

        var descriptor = VolumeDescriptor.Load(PrimaryVolumeFiles.ImageDirectory(primaryDirectory));
        using var primary = VolumeImage.Open(PrimaryVolumeFiles.ImagePath(primaryDirectory), descriptor.SizeBytes, writable: false);
        var onPrimary = GuestVerifier.Verify(state, primary);
        if (!onPrimary.Ok)
            return new DemoVerdict(false, $"primary image at checkpoint {epoch}: {onPrimary.FirstMismatch!.Description}");

        var joinedLater = new List<string>();
        foreach (var secondaryDirectory in secondaryDirectories)
        {
            var name = Path.GetFileName(secondaryDirectory);
            using var store = RollbackStore.Recover(Path.Combine(secondaryDirectory, SecondaryActor.StoreName));
            if (store.Descriptor.VolumeId != descriptor.VolumeId || store.Descriptor.SizeBytes != descriptor.SizeBytes)
                return new DemoVerdict(false, $"{name} holds volume {store.Descriptor.VolumeId}, the primary {descriptor.VolumeId}");
            try
            {
                store.RollbackTo(epoch);
            }
            catch (ResyncIncompleteException e) when (e.SyncedFrom > epoch)
            {
                // Re-protected after checkpoint N was committed (the guest had stopped): it holds the
                // primary's image from a later checkpoint on, which is N's content since nothing was
                // written after N; it has no state N. Its image is still checked against state N.
                joinedLater.Add(name);
            }
            if (!joinedLater.Contains(name))
            {
                var statePath = GuestStateFiles.PathIn(secondaryDirectory, epoch);
                if (!File.Exists(statePath))
                    return new DemoVerdict(false, $"no guest state of checkpoint {epoch} in {secondaryDirectory}");
                if (!primaryBlob.AsSpan().SequenceEqual(File.ReadAllBytes(statePath)))
                    return new DemoVerdict(false, $"the guest states of checkpoint {epoch} differ between the primary and {name}");
            }
            var onSecondary = GuestVerifier.Verify(state, store);
            if (!onSecondary.Ok)
                return new DemoVerdict(false, $"{name} image at checkpoint {epoch}: {onSecondary.FirstMismatch!.Description}");
            if (FirstDifference(primary, store, descriptor.SizeBytes) is { } offset)
                return new DemoVerdict(false, $"images of the primary and {name} differ at byte {offset}");
        }
        return new DemoVerdict(true,
            $"checkpoint {epoch}: {state.WriteCount} guest writes, {state.BlockCount} blocks verified on the primary" +
            (secondaryDirectories.Count == 0 ? "" : $" and {secondaryDirectories.Count} secondar{(secondaryDirectories.Count == 1 ? "y" : "ies")}, images identical") +
            $" ({descriptor.SizeBytes >> 20} MiB)" +
            (joinedLater.Count == 0 ? "" : $"; {string.Join(", ", joinedLater)} re-protected after checkpoint {epoch}: image only (no state {epoch} there)"));
    }

    /// <summary>
    /// Invariant (2) for a guest whose state lives outside the checkpoint (an NBD client): every
    /// in-sync secondary's store, rolled back to checkpoint <paramref name="epoch"/>, holds the final
    /// primary's image byte for byte (nothing was written after <paramref name="epoch"/>, the guest stopped there).
    /// </summary>
    public static DemoVerdict VerifyImages(string dataDirectory, CoordinatorStatus final, long epoch)
    {
        if (final.Primary is not { } primaryName)
            return new DemoVerdict(false, "no primary at the end");
        var primaryDirectory = Path.Combine(dataDirectory, primaryName);
        var descriptor = VolumeDescriptor.Load(PrimaryVolumeFiles.ImageDirectory(primaryDirectory));
        using var primary = VolumeImage.Open(PrimaryVolumeFiles.ImagePath(primaryDirectory), descriptor.SizeBytes, writable: false);
        foreach (var name in final.SecondariesOf(epoch))
        {
            using var store = RollbackStore.Recover(Path.Combine(dataDirectory, name, SecondaryActor.StoreName));
            if (store.Descriptor.VolumeId != descriptor.VolumeId || store.Descriptor.SizeBytes != descriptor.SizeBytes)
                return new DemoVerdict(false, $"{name} holds volume {store.Descriptor.VolumeId}, the primary {descriptor.VolumeId}");
            try
            {
                store.RollbackTo(epoch);
            }
            catch (ResyncIncompleteException e) when (e.SyncedFrom > epoch)
            {
                // Re-protected after checkpoint N: its image is the primary's from a later checkpoint, N's content.
            }
            if (FirstDifference(primary, store, descriptor.SizeBytes) is { } offset)
                return new DemoVerdict(false, $"images of the primary and {name} differ at byte {offset} (checkpoint {epoch})");
        }
        return new DemoVerdict(true, $"checkpoint {epoch}: the primary's image and {final.SecondariesOf(epoch).Count} secondaries' identical ({descriptor.SizeBytes >> 20} MiB)");
    }

    private static long? FirstDifference(VolumeImage primary, RollbackStore store, long size)
    {
        var a = new byte[CompareChunk];
        var b = new byte[CompareChunk];
        for (long offset = 0; offset < size; offset += CompareChunk)
        {
            var length = (int)Math.Min(CompareChunk, size - offset);
            primary.Read(offset, a.AsSpan(0, length));
            store.Read(offset, b.AsSpan(0, length));
            var same = a.AsSpan(0, length).CommonPrefixLength(b.AsSpan(0, length));
            if (same != length)
                return offset + same;
        }
        return null;
    }
}
