using McActors.Guests;
using Xunit.Abstractions;

namespace McActors.Tests.Guests;

/// <summary>The workload is a pure function of its seed, and Restore(Capture()) continues it exactly.</summary>
public sealed class SyntheticWorkloadTests(ITestOutputHelper output)
{
    private const long Volume = 4 << 20;

    [Fact]
    public void The_same_seed_gives_the_same_writes_and_content()
    {
        Seeds.Run(20, seed =>
        {
            var a = new SyntheticWorkload(seed, Volume);
            var b = new SyntheticWorkload(seed, Volume);
            var bufA = new byte[a.MaxWriteLength];
            var bufB = new byte[b.MaxWriteLength];
            for (var i = 0; i < 300; i++)
            {
                var wa = a.NextWrite(bufA);
                var wb = b.NextWrite(bufB);
                Assert.Equal(wa, wb);
                Assert.True(bufA.AsSpan(0, wa.Length).SequenceEqual(bufB.AsSpan(0, wb.Length)), $"content of write {i} differs");
            }
            Assert.Equal(a.Digest, b.Digest);
            Assert.Equal(a.Capture(5), b.Capture(5));
        }, output);
    }

    [Fact]
    public void Different_seeds_give_different_writes()
    {
        var a = new SyntheticWorkload(1, Volume);
        var b = new SyntheticWorkload(2, Volume);
        var same = 0;
        for (var i = 0; i < 100; i++)
            same += a.Skip() == b.Skip() ? 1 : 0;
        Assert.True(same < 10, $"{same} of 100 writes are identical");
        Assert.NotEqual(a.Digest, b.Digest);
    }

    [Fact]
    public void Writes_are_block_aligned_inside_the_volume_mostly_small_and_overlapping()
    {
        Seeds.Run(10, seed =>
        {
            var w = new SyntheticWorkload(seed, Volume);
            int small = 0, large = 0;
            const int n = 2000;
            for (var i = 0; i < n; i++)
            {
                var write = w.Skip();
                Assert.Equal(i, write.Index);
                Assert.Equal(0, write.Offset % 4096);
                Assert.Equal(0, write.Length % 4096);
                Assert.InRange(write.Length, 4096, 256 << 10);
                Assert.InRange(write.Offset + write.Length, write.Length, Volume);
                small += write.Length <= 16 << 10 ? 1 : 0;
                large += write.Length >= 64 << 10 ? 1 : 0;
            }
            Assert.True(small > n / 2, $"only {small} of {n} writes are 16 KiB or less");
            Assert.True(large > n / 50, $"only {large} of {n} writes are 64 KiB or more");
            // Overlap: blocks were written more than once.
            var rewritten = w.CaptureState(0).Versions.Count(p => p.Version > 1);
            Assert.True(rewritten > 50, $"only {rewritten} blocks were rewritten");
        }, output);
    }

    [Fact]
    public void Each_block_of_a_write_holds_the_content_of_its_new_version()
    {
        var w = new SyntheticWorkload(42, Volume);
        var buffer = new byte[w.MaxWriteLength];
        var expected = new byte[w.BlockSize];
        for (var i = 0; i < 200; i++)
        {
            var write = w.NextWrite(buffer);
            for (var b = 0; b < write.Length / w.BlockSize; b++)
            {
                var block = write.Offset / w.BlockSize + b;
                w.FillBlock(block, w.VersionOf(block), expected);
                Assert.True(buffer.AsSpan(b * w.BlockSize, w.BlockSize).SequenceEqual(expected), $"write {i}, block {block}");
            }
        }
    }

    [Fact]
    public void Restore_of_a_capture_continues_exactly_like_the_original()
    {
        int[] blockSizes = [512, 4096, 16384];
        Seeds.Run(40, seed =>
        {
            var random = new Random(seed);
            var bs = blockSizes[random.Next(blockSizes.Length)];
            var volume = (long)bs * random.Next(1, 2048);
            var original = new SyntheticWorkload(seed, volume, bs);
            for (var i = random.Next(0, 500); i > 0; i--)
                original.Skip();
            var blob = original.Capture(7);
            var restored = SyntheticWorkload.Restore(blob);
            Assert.Equal(blob, restored.Capture(7));
            Assert.Equal(original.WriteCount, restored.WriteCount);
            Assert.Equal(original.BytesWritten, restored.BytesWritten);
            Assert.Equal(original.Digest, restored.Digest);
            var a = new byte[original.MaxWriteLength];
            var b = new byte[restored.MaxWriteLength];
            for (var i = 0; i < 200; i++)
            {
                var wa = original.NextWrite(a);
                var wb = restored.NextWrite(b);
                Assert.Equal(wa, wb);
                Assert.True(a.AsSpan(0, wa.Length).SequenceEqual(b.AsSpan(0, wb.Length)), $"content of write {wa.Index} differs after restore");
            }
            Assert.Equal(original.Capture(8), restored.Capture(8));
        }, output);
    }

    [Fact]
    public void Peek_names_the_next_write_and_a_short_buffer_changes_nothing()
    {
        var w = new SyntheticWorkload(3, Volume);
        for (var i = 0; i < 50; i++)
        {
            var peeked = w.PeekNextWrite();
            if (peeked.Length > w.BlockSize)
            {
                var before = w.Capture(0);
                Assert.Throws<ArgumentException>(() => w.NextWrite(new byte[w.BlockSize]));
                Assert.Equal(before, w.Capture(0));
            }
            Assert.Equal(peeked, w.NextWrite().Write);
        }
    }

    [Fact]
    public void Memory_follows_the_blocks_written_not_the_volume_size()
    {
        var w = new SyntheticWorkload(9, 1L << 40); // 1 TiB
        for (var i = 0; i < 1000; i++)
            w.Skip();
        Assert.InRange(w.BlocksTouched, 1000, 64 * 1000);
        Assert.True(w.Capture(1).Length < 12 * 64 * 1000 + 100);
    }

    [Fact]
    public void A_tiny_volume_still_works()
    {
        var w = new SyntheticWorkload(5, 4096);
        for (var i = 0; i < 10; i++)
            Assert.Equal(new SyntheticWrite(i, 0, 4096), w.Skip());
        Assert.Equal(10u, w.VersionOf(0));
    }

    [Fact]
    public void Bad_geometry_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new SyntheticWorkload(1, 4096 * 3 + 512));
        Assert.Throws<ArgumentException>(() => new SyntheticWorkload(1, 4096, 3000));
        Assert.Throws<ArgumentException>(() => new SyntheticWorkload(1, 0));
    }

    [Fact]
    public void The_history_check_accepts_a_real_state_and_names_a_forged_one()
    {
        var w = new SyntheticWorkload(11, Volume);
        for (var i = 0; i < 300; i++)
            w.Skip();
        var state = w.CaptureState(3);
        Assert.Null(GuestVerifier.CheckHistory(state));

        var forged = state.Versions.ToArray();
        forged[5] = forged[5] with { Version = forged[5].Version + 1 };
        var bad = new GuestState(state.Seed, state.VolumeSizeBytes, state.BlockSize, state.Epoch,
            state.WriteCount, state.BytesWritten, state.Digest, forged);
        var problem = GuestVerifier.CheckHistory(GuestState.Parse(bad.Serialize()));
        Assert.NotNull(problem);
        Assert.Contains($"block {forged[5].Block}", problem);
    }
}
