using McActors.Protocol;
using McActors.Replication;
using McActors.Storage.Volume;

namespace McActors.Tests.Replication;

/// <summary>The primary's resync copy without an actor: what it refuses, how a turn ends, when it reports.</summary>
public sealed class ResyncCopyTests : IDisposable
{
    private const int Chunk = 64 << 10;
    private const long Size = 16 * Chunk;
    private static readonly VolumeSpec Volume = new(Guid.NewGuid(), Size, 4096);

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static AddSecondary Join(int chunkBytes, byte[]? digest = null) =>
        new(1, new SecondaryEndpoint("s2", "s2", 1), chunkBytes, digest, Attempt: 3);

    private VolumeImage ImageWithChunks(params int[] chunks)
    {
        var image = VolumeImage.Create(_dir.Sub("image"), Size);
        foreach (var chunk in chunks)
            image.Write((long)chunk * Chunk, Enumerable.Repeat((byte)(chunk + 1), 4096).ToArray());
        return image;
    }

    private static ResyncCopy Copy() => new("s2", new InMemoryReplicaStream(), Size, Chunk, digest: null) { Attempt = 3 };

    [Fact]
    public void A_join_whose_chunks_do_not_fit_the_blocks_or_whose_digest_does_not_fit_its_chunks_is_refused()
    {
        Assert.Null(ResyncCopy.Refusal(Join(Chunk), Volume));
        Assert.Null(ResyncCopy.Refusal(Join(Chunk, new byte[16 * 16]), Volume));
        Assert.Contains("not a multiple of the block size", ResyncCopy.Refusal(Join(4096 + 512), Volume));
        Assert.Contains("not a multiple of the block size", ResyncCopy.Refusal(Join(2048), Volume));
        Assert.Contains("its digest has 16 B", ResyncCopy.Refusal(Join(Chunk, new byte[16]), Volume));
    }

    [Fact]
    public void A_turn_sends_the_differing_chunks_in_order_and_ends_at_its_scan_budget()
    {
        using var image = ImageWithChunks(1, 2, 9);
        var copy = Copy();
        var sent = new List<long>();

        Assert.Equal(CopyTurn.MoreToScan, copy.Turn(image, 4 * Chunk, (offset, _) => { sent.Add(offset); return true; }));
        Assert.Equal([1L * Chunk, 2L * Chunk], sent);
        Assert.Equal(4 * Chunk, copy.ScannedBytes);

        Assert.Equal(CopyTurn.Scanned, copy.Turn(image, Size, (offset, _) => { sent.Add(offset); return true; }));
        Assert.Equal([1L * Chunk, 2L * Chunk, 9L * Chunk], sent);
        Assert.Equal(3 * Chunk, copy.CopiedBytes);
        Assert.True(copy.Progress.Done);
    }

    [Fact]
    public void A_chunk_that_waits_on_the_window_ends_the_turn_and_the_next_turn_goes_on_after_it()
    {
        using var image = ImageWithChunks(1, 2);
        var copy = Copy();
        var sent = new List<long>();

        Assert.Equal(CopyTurn.WaitingForWindow, copy.Turn(image, Size, (offset, _) => { sent.Add(offset); return false; }));
        Assert.Equal([1L * Chunk], sent);
        Assert.False(copy.Done);

        Assert.Equal(CopyTurn.Scanned, copy.Turn(image, Size, (offset, _) => { sent.Add(offset); return true; }));
        Assert.Equal([1L * Chunk, 2L * Chunk], sent);
    }

    [Fact]
    public void Progress_is_due_when_forced_and_not_again_within_the_interval()
    {
        var copy = Copy();
        Assert.True(copy.ProgressDue(force: true));
        Assert.False(copy.ProgressDue(force: false));
        Assert.True(copy.ProgressDue(force: true));
    }
}
