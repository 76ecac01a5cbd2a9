using System.Buffers.Binary;
using System.IO.Hashing;
using McActors.Guests;

namespace McActors.Tests.Guests;

/// <summary>The checkpoint blob round-trips, and every damaged or cut blob is refused with a named problem.</summary>
public sealed class GuestStateTests
{
    private static SyntheticWorkload Workload(int writes, long seed = 77)
    {
        var w = new SyntheticWorkload(seed, 4 << 20);
        for (var i = 0; i < writes; i++)
            w.Skip();
        return w;
    }

    private static byte[] Reseal(byte[] blob)
    {
        // Recomputes the checksum, so a test can reach the checks behind it.
        BinaryPrimitives.WriteUInt64LittleEndian(blob.AsSpan(blob.Length - 8), XxHash3.HashToUInt64(blob.AsSpan(0, blob.Length - 8)));
        return blob;
    }

    [Fact]
    public void A_blob_round_trips_every_field()
    {
        var w = Workload(250);
        var state = GuestState.Parse(w.Capture(12));
        Assert.Equal(77, state.Seed);
        Assert.Equal(4 << 20, state.VolumeSizeBytes);
        Assert.Equal(4096, state.BlockSize);
        Assert.Equal(12, state.Epoch);
        Assert.Equal(250, state.WriteCount);
        Assert.Equal(w.BytesWritten, state.BytesWritten);
        Assert.Equal(w.Digest, state.Digest);
        Assert.Equal(w.BlocksTouched, state.Versions.Count);
        foreach (var pair in state.Versions)
            Assert.Equal(w.VersionOf(pair.Block), pair.Version);
        Assert.Equal(state.Versions.OrderBy(p => p.Block), state.Versions);
        Assert.Equal(w.Capture(12), state.Serialize());
    }

    [Fact]
    public void An_empty_state_round_trips()
    {
        var blob = new SyntheticWorkload(-5, 8192, 512).Capture(0);
        Assert.Equal(GuestState.HeaderSize + GuestState.ChecksumSize, blob.Length);
        var state = GuestState.Parse(blob);
        Assert.Equal(-5, state.Seed);
        Assert.Empty(state.Versions);
        Assert.Equal(0, state.WriteCount);
    }

    [Fact]
    public void Every_truncation_is_refused_and_a_cut_body_is_called_truncated()
    {
        var blob = Workload(100).Capture(3);
        for (var length = 0; length < blob.Length; length++)
        {
            var e = Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(blob.AsSpan(0, length)));
            if (length >= GuestState.HeaderSize + GuestState.ChecksumSize)
            {
                var t = Assert.IsType<GuestStateTruncatedException>(e);
                Assert.Equal(blob.Length, t.ExpectedLength);
                Assert.Contains("truncated", e.Message);
            }
        }
    }

    [Fact]
    public void Every_flipped_bit_is_refused()
    {
        var blob = Workload(60).Capture(3);
        var random = new Random(1);
        for (var i = 0; i < blob.Length; i++)
        {
            var damaged = (byte[])blob.Clone();
            damaged[i] ^= (byte)(1 << random.Next(8));
            var e = Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(damaged));
            Assert.Contains("corrupt", e.Message);
            // A flip in the version table can only be caught by the checksum: it must say so.
            if (i >= GuestState.HeaderSize && i < blob.Length - GuestState.ChecksumSize)
                Assert.IsType<GuestStateChecksumException>(e);
        }
    }

    [Fact]
    public void A_wrong_magic_format_or_trailing_bytes_are_named()
    {
        var blob = Workload(10).Capture(1);

        var magic = (byte[])blob.Clone();
        magic[0] ^= 0xFF;
        Assert.Contains("magic", Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(magic)).Message);

        var format = (byte[])blob.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(format.AsSpan(4), 9);
        Assert.Contains("format version 9", Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(Reseal(format))).Message);

        var longer = Reseal([.. blob, 0, 0, 0, 0]);
        Assert.Contains("pair count", Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(longer)).Message);

        Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse([]));
    }

    [Fact]
    public void A_well_sealed_blob_with_an_impossible_table_is_refused()
    {
        var blob = Workload(40).Capture(1);
        var swapped = (byte[])blob.Clone();
        // Swap the first two pairs: blocks no longer ascend.
        blob.AsSpan(GuestState.HeaderSize, 12).CopyTo(swapped.AsSpan(GuestState.HeaderSize + 12));
        blob.AsSpan(GuestState.HeaderSize + 12, 12).CopyTo(swapped.AsSpan(GuestState.HeaderSize));
        Assert.Contains("out of order", Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(Reseal(swapped))).Message);

        var zero = (byte[])blob.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(zero.AsSpan(GuestState.HeaderSize + 8), 0);
        Assert.Contains("version 0", Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(Reseal(zero))).Message);

        var geometry = (byte[])blob.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(geometry.AsSpan(24), 1000);
        Assert.Contains("geometry", Assert.ThrowsAny<GuestStateCorruptException>(() => GuestState.Parse(Reseal(geometry))).Message);
    }

    [Fact]
    public void Restore_refuses_a_damaged_blob()
    {
        var blob = Workload(10).Capture(1);
        blob[^20] ^= 1;
        Assert.Throws<GuestStateChecksumException>(() => SyntheticWorkload.Restore(blob));
    }
}
