using System.Buffers;
using McActors.DataPlane;
using Xunit.Abstractions;

namespace McActors.Tests.DataPlane;

/// <summary>
/// Hostile and damaged input: whatever the bytes, the decoder either decodes whole valid frames
/// or throws <see cref="DataPlaneProtocolException"/>; it never throws anything else, never
/// loops, and never accepts a damaged frame.
/// </summary>
public sealed class FrameDecoderFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Random_bytes_give_a_protocol_error_or_nothing()
    {
        Seeds.Run(2000, seed =>
        {
            var random = new Random(seed);
            var bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            if (bytes.Length >= 4 && random.Next(2) == 0)
            {
                // Half the time a plausible tag, to get past the first check into the deeper ones.
                bytes[0] = (byte)'M';
                bytes[1] = (byte)'D';
                bytes[2] = (byte)random.Next(0, 10); // every type (1-8) and unknown ones
                bytes[3] = (byte)(random.Next(4) == 0 ? random.Next(256) : 0);
                if (bytes.Length >= 8 && random.Next(2) == 0)
                    bytes[4..8].AsSpan().Clear(); // small body lengths
                if (bytes.Length >= 8 && random.Next(2) == 0)
                    bytes[4] = (byte)random.Next(64);
            }
            var frames = DecodeOrProtocolError(bytes, random);
            // Only a stream with a valid 64-bit checksum could decode; random bytes never have one.
            Assert.True(frames is null || (frames.Count == 0 && bytes.Length == 0), $"{frames?.Count} frames decoded from random bytes");
        }, output);
    }

    [Fact]
    public void Every_corruption_of_a_valid_stream_is_detected()
    {
        var bytes = Streams.OneOfEach(out var expected);
        Seeds.Run(2000, seed =>
        {
            var random = new Random(seed);
            var damaged = (byte[])bytes.Clone();
            var changes = random.Next(1, 4);
            for (var i = 0; i < changes; i++)
            {
                var at = random.Next(damaged.Length);
                damaged[at] = random.Next(2) == 0 ? (byte)(damaged[at] ^ (1 << random.Next(8))) : (byte)random.Next(256);
            }
            if (damaged.AsSpan().SequenceEqual(bytes))
                return;
            var frames = DecodeOrProtocolError(damaged, random);
            Assert.Null(frames);
        }, output);
    }

    [Fact]
    public void A_valid_stream_cut_anywhere_inside_a_frame_is_truncated()
    {
        var bytes = Streams.OneOfEach(out var expected);
        var boundaries = new HashSet<int> { 0 };
        var probe = new ReadOnlySequence<byte>(bytes);
        var decoder = new FrameDecoder();
        while (decoder.TryDecode(ref probe, out _))
            boundaries.Add((int)decoder.StreamOffset);
        for (var length = 0; length <= bytes.Length; length++)
        {
            var frames = DecodeOrProtocolError(bytes.AsSpan(0, length).ToArray(), new Random(length));
            if (boundaries.Contains(length))
                Assert.Equal(expected.Take(frames!.Count), frames);
            else
                Assert.Null(frames);
        }
    }

    /// <summary>Decodes from random segment splits; null if (and only if) a protocol error was raised.</summary>
    private static List<FrameRecord>? DecodeOrProtocolError(byte[] bytes, Random random)
    {
        var cuts = Enumerable.Range(0, random.Next(0, 6)).Select(_ => random.Next(Math.Max(1, bytes.Length))).ToArray();
        try
        {
            return Streams.DecodeAll(Streams.Split(bytes, cuts), maxPayload: 1 << 16);
        }
        catch (DataPlaneProtocolException e)
        {
            Assert.InRange(e.StreamOffset, 0, bytes.Length);
            return null;
        }
    }
}
