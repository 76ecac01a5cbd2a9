using McActors.Guests;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Tests.Guests;

/// <summary>The verifier passes an image that is exactly the guest's disk, and names the first block of one that is not.</summary>
public sealed class GuestVerifierTests(ITestOutputHelper output) : IDisposable
{
    private const long Volume = 4 << 20;
    private const int Bs = 4096;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A workload of <paramref name="writes"/> writes applied to a new image.</summary>
    private (SyntheticWorkload Workload, VolumeImage Image) Written(int writes, long seed = 1234, string name = "volume.img")
    {
        var w = new SyntheticWorkload(seed, Volume, Bs);
        var image = VolumeImage.Create(_dir.Sub(name), Volume);
        var buffer = new byte[w.MaxWriteLength];
        for (var i = 0; i < writes; i++)
        {
            var write = w.NextWrite(buffer);
            image.Write(write.Offset, buffer.AsSpan(0, write.Length));
        }
        return (w, image);
    }

    private static byte[] Block(SyntheticWorkload w, long block, uint version)
    {
        var b = new byte[w.BlockSize];
        if (version > 0)
            w.FillBlock(block, version, b);
        return b;
    }

    private static long RewrittenBlock(GuestState state) => state.Versions.First(p => p.Version >= 2).Block;

    private static long UnwrittenBlock(GuestState state)
    {
        var written = state.Versions.Select(p => p.Block).ToHashSet();
        return Enumerable.Range(0, (int)state.BlockCount).First(b => !written.Contains(b));
    }

    [Fact]
    public void A_correct_image_passes()
    {
        Seeds.Run(5, seed =>
        {
            var (w, image) = Written(400, seed, $"ok-{seed}.img");
            using (image)
            {
                var result = GuestVerifier.Verify(w.CaptureState(1), image);
                Assert.True(result.Ok, result.ToString());
                Assert.Equal(Volume / Bs, result.BlocksChecked);
                // The same through the blob and a reader delegate, with chunks that split runs.
                Assert.True(GuestVerifier.Verify(GuestState.Parse(w.Capture(1)), image.Read, chunkBytes: 3 * Bs).Ok);
            }
        }, output);
    }

    [Fact]
    public void An_empty_image_passes_an_empty_state_and_fails_a_written_one()
    {
        using var image = VolumeImage.Create(_dir.Sub("empty.img"), Volume);
        var w = new SyntheticWorkload(8, Volume);
        Assert.True(GuestVerifier.Verify(w.CaptureState(0), image).Ok);
        var first = w.NextWrite();
        var result = GuestVerifier.Verify(w.CaptureState(1), image);
        Assert.False(result.Ok);
        Assert.Equal(first.Write.Offset / Bs, result.FirstMismatch!.Block);
        Assert.Equal(FoundContent.Zeroes, result.FirstMismatch.Found);
    }

    [Fact]
    public void An_older_version_is_named_with_block_offset_and_versions()
    {
        var (w, image) = Written(600);
        using var _ = image;
        var state = w.CaptureState(2);
        var block = RewrittenBlock(state);
        var expected = w.VersionOf(block);
        image.Write(block * Bs, Block(w, block, expected - 1));

        var m = GuestVerifier.Verify(state, image).FirstMismatch;
        Assert.NotNull(m);
        output.WriteLine(m.Description);
        Assert.Equal(block, m.Block);
        Assert.Equal(block * Bs, m.Offset);
        Assert.Equal(FoundContent.OtherVersion, m.Found);
        Assert.Equal(expected, m.ExpectedVersion);
        Assert.Equal(expected - 1, m.FoundVersion);
        Assert.Equal(block, m.FoundBlock);
        Assert.Equal($"block {block} (offset {block * Bs}): expected version {expected} content, found version {expected - 1} content (older)", m.Description);
    }

    [Fact]
    public void A_newer_version_is_named()
    {
        // The disk holds a write the state does not: what a missed rollback looks like.
        var (w, image) = Written(300);
        using var _ = image;
        var state = w.CaptureState(1);
        var (write, data) = w.NextWrite();
        image.Write(write.Offset, data);
        var m = GuestVerifier.Verify(state, image).FirstMismatch!;
        Assert.Equal(write.Offset / Bs, m.Block);
        Assert.Contains("newer", m.Description);
        Assert.Equal(state.Versions.FirstOrDefault(p => p.Block == m.Block).Version + 1u, m.FoundVersion);
    }

    [Fact]
    public void Zeroes_unknown_bytes_misplaced_and_damaged_content_are_told_apart()
    {
        var (w, image) = Written(500);
        using var _ = image;
        var state = w.CaptureState(1);
        var rewritten = RewrittenBlock(state);
        var version = w.VersionOf(rewritten);
        var blank = UnwrittenBlock(state);

        GuestVerification Check(long block, byte[] content)
        {
            var saved = new byte[Bs];
            image.Read(block * Bs, saved);
            image.Write(block * Bs, content);
            var r = GuestVerifier.Verify(state, image);
            image.Write(block * Bs, saved);
            Assert.True(GuestVerifier.Verify(state, image).Ok);
            output.WriteLine(r.ToString());
            Assert.Equal(block, r.FirstMismatch!.Block);
            return r;
        }

        var zeroes = Check(rewritten, new byte[Bs]).FirstMismatch!;
        Assert.Equal(FoundContent.Zeroes, zeroes.Found);
        Assert.EndsWith("found zeroes", zeroes.Description);

        var garbage = new byte[Bs];
        new Random(3).NextBytes(garbage);
        Assert.Equal(FoundContent.UnknownBytes, Check(rewritten, garbage).FirstMismatch!.Found);

        var stray = Check(blank, new byte[Bs].Select((_, i) => i == 100 ? (byte)1 : (byte)0).ToArray()).FirstMismatch!;
        Assert.Equal(FoundContent.UnknownBytes, stray.Found);
        Assert.Equal(0u, stray.ExpectedVersion);
        Assert.Equal(100, stray.FirstDifferentByte);
        Assert.Contains("expected zeroes (never written)", stray.Description);

        var other = state.Versions.First(p => p.Block != rewritten);
        var misplaced = Check(rewritten, Block(w, other.Block, other.Version)).FirstMismatch!;
        Assert.Equal(FoundContent.OtherBlock, misplaced.Found);
        Assert.Equal(other.Block, misplaced.FoundBlock);
        Assert.Contains($"the content of block {other.Block}", misplaced.Description);

        var torn = Block(w, rewritten, version);
        torn[Bs - 1] ^= 0x55;
        var damaged = Check(rewritten, torn).FirstMismatch!;
        Assert.Equal(FoundContent.DamagedVersion, damaged.Found);
        Assert.Equal(Bs - 1, damaged.FirstDifferentByte);

        var foreign = new byte[Bs];
        new SyntheticWorkload(999, Volume).FillBlock(rewritten, version, foreign);
        Assert.Equal(FoundContent.OtherSeed, Check(rewritten, foreign).FirstMismatch!.Found);
    }

    [Fact]
    public void The_first_disagreeing_block_is_named_across_chunks()
    {
        var (w, image) = Written(500);
        using var _ = image;
        var state = w.CaptureState(1);
        var late = state.Versions[^1].Block;
        var early = state.Versions[state.Versions.Count / 2].Block;
        image.Write(late * Bs, new byte[Bs]);
        image.Write(early * Bs, new byte[Bs]);
        foreach (var chunk in new[] { Bs, 5 * Bs, 1 << 20 })
            Assert.Equal(early, GuestVerifier.Verify(state, image.Read, chunk).FirstMismatch!.Block);
    }

    [Fact]
    public void An_image_of_another_size_is_refused()
    {
        using var image = VolumeImage.Create(_dir.Sub("small.img"), Volume / 2);
        Assert.Throws<ArgumentException>(() => GuestVerifier.Verify(new SyntheticWorkload(1, Volume).CaptureState(0), image));
    }

    [Fact]
    public void A_rollback_store_rolled_back_to_a_checkpoint_holds_that_checkpoint_s_guest_disk()
    {
        // Invariants 1-2 in miniature: the guest state of checkpoint 1 describes the store's image
        // after epoch 2's writes are rolled back, and not before.
        Seeds.Run(3, seed =>
        {
            var random = new Random(seed);
            using var store = RollbackStore.Create(_dir.Sub($"store-{seed}"), VolumeDescriptor.New(Volume, Bs));
            var w = new SyntheticWorkload(seed, Volume, Bs);
            var buffer = new byte[w.MaxWriteLength];
            void Run(long epoch, int writes)
            {
                for (var i = 0; i < writes; i++)
                {
                    var write = w.NextWrite(buffer);
                    store.Write(epoch, write.Offset, buffer.AsSpan(0, write.Length));
                }
            }
            Run(1, random.Next(50, 300));
            var checkpoint1 = GuestState.Parse(w.Capture(1));
            store.Prepare(1);
            store.Commit(1);
            Run(2, random.Next(1, 200));
            Assert.True(GuestVerifier.Verify(w.CaptureState(2), store).Ok);
            var before = GuestVerifier.Verify(checkpoint1, store);
            Assert.False(before.Ok);
            Assert.Contains("newer", before.FirstMismatch!.Description);

            store.RollbackTo(1);
            var after = GuestVerifier.Verify(checkpoint1, store);
            Assert.True(after.Ok, after.ToString());
        }, output);
    }
}
