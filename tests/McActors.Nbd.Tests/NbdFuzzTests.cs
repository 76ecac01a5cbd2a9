using System.Buffers.Binary;
using System.Net.Sockets;
using Xunit.Abstractions;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd.Tests;

/// <summary>
/// Random and truncated handshake, option and request frames: the server answers with the right
/// kind of reply or closes the connection, never crashes or hangs, and keeps serving another client
/// meanwhile. Seeded (Seeds): a failure names its seed.
/// </summary>
public sealed class NbdFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Random_handshakes_end_in_replies_or_a_close_while_another_client_is_served()
    {
        await using var f = new NbdServerFixture();
        using var bystander = f.Connect();
        bystander.Go();
        var rounds = 0;
        Seeds.Run(150, seed =>
        {
            var random = new Random(seed);
            using var c = f.Connect();
            c.Receive(18);
            var frames = new List<byte>();
            var flags = random.Next(10) == 0 ? (uint)random.Next() : ClientFlagFixedNewstyle | (uint)random.Next(2) * ClientFlagNoZeroes;
            frames.AddRange(BigEndian(flags));
            for (var i = random.Next(1, 5); i > 0; i--)
                frames.AddRange(RandomOption(random));
            var cut = random.Next(3) == 0 ? random.Next(frames.Count + 1) : frames.Count;
            c.Send(frames.Take(cut).ToArray());
            c.Shutdown(); // the peer is done: the server must finish with it, not wait for more
            DrainOptionReplies(c);
            // The bystander, in transmission all along, is still served.
            var (error, _) = bystander.Call(CmdRead, (ulong)random.Next(0, 2048) * 512, 512, handle: (ulong)seed);
            Assert.Equal(0u, error);
            rounds++;
        }, output);
        f.AssertStillServes();
        output.WriteLine($"{rounds} handshakes fuzzed; server log lines: {f.Log.Count}");
    }

    [Fact]
    public async Task Random_request_streams_get_well_formed_replies_or_a_close_while_another_client_is_served()
    {
        await using var f = new NbdServerFixture();
        using var bystander = f.Connect();
        bystander.Go();
        Seeds.Run(150, seed =>
        {
            var random = new Random(seed);
            using var c = f.Connect();
            c.Go();
            var frames = new List<byte>();
            var requests = random.Next(1, 8);
            for (var i = 0; i < requests; i++)
                frames.AddRange(RandomRequest(random, (ulong)i));
            var cut = random.Next(3) == 0 ? random.Next(frames.Count + 1) : frames.Count;
            c.Send(frames.Take(cut).ToArray());
            c.Shutdown();
            var replies = DrainReplies(c, requests);
            Assert.True(replies <= requests, $"{replies} replies to {requests} requests");
            Assert.Equal(0u, bystander.Call(CmdFlush, 0, 0, handle: (ulong)seed).Error);
        }, output);
        f.AssertStillServes();
    }

    private static byte[] BigEndian(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        return b;
    }

    private static IEnumerable<byte> RandomOption(Random random)
    {
        if (random.Next(8) == 0)
        {
            var junk = new byte[random.Next(1, 40)];
            random.NextBytes(junk);
            return junk;
        }
        uint[] options = [OptExportName, OptAbort, OptList, OptInfo, OptGo, OptStartTls, OptStructuredReply, 0, 99, uint.MaxValue];
        var option = options[random.Next(options.Length)];
        byte[] data = option is OptInfo or OptGo && random.Next(2) == 0
            ? NbdTestClient.GoData(random.Next(2) == 0 ? "" : "volume", [.. Enumerable.Range(0, random.Next(4)).Select(_ => (ushort)random.Next(5))])
            : new byte[random.Next(0, 64)];
        if (random.Next(4) == 0)
            random.NextBytes(data);
        var length = random.Next(6) == 0 ? (uint)random.Next() : (uint)data.Length; // lying lengths too
        var header = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(header, random.Next(12) == 0 ? (ulong)random.NextInt64() : OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), length);
        return header.Concat(data);
    }

    private static IEnumerable<byte> RandomRequest(Random random, ulong handle)
    {
        ushort[] types = [CmdRead, CmdWrite, CmdFlush, CmdTrim, CmdWriteZeroes, CmdDisc, 5, 7, (ushort)random.Next(65536)];
        var type = types[random.Next(types.Length)];
        var length = random.Next(4) switch
        {
            0 => (uint)random.Next(),
            1 => (uint)random.Next(0, 200) * 512,
            2 => (uint)random.Next(0, 5000),
            _ => 512u,
        };
        var offset = random.Next(4) switch
        {
            0 => (ulong)random.NextInt64(),
            1 => (ulong)(NbdServerFixture.Size - 512),
            _ => (ulong)random.Next(0, 2048) * 512,
        };
        var header = new byte[RequestHeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(header, random.Next(15) == 0 ? (uint)random.Next() : RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), random.Next(4) == 0 ? (ushort)random.Next(65536) : (ushort)0);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), handle);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(24), length);
        // A write's payload: usually as long as it says (when that is sane), sometimes not.
        var payload = type == CmdWrite ? new byte[length <= 70_000 && random.Next(5) > 0 ? length : random.Next(0, 3000)] : [];
        return header.Concat(payload);
    }

    /// <summary>Reads option replies (each well-formed) until the server closes; the server must close (the client half-closed).</summary>
    private static void DrainOptionReplies(NbdTestClient c)
    {
        while (true)
        {
            var header = c.TryReceive(20);
            if (header is null)
                return;
            var magic = BinaryPrimitives.ReadUInt64BigEndian(header);
            if (magic != OptionReplyMagic)
            {
                // Only after EXPORT_NAME: the export's size and flags (10 or 134 B), then transmission, where EOF closes.
                Assert.True(c.IsClosedByServer(), "the server did not close after the client half-closed");
                return;
            }
            var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
            Assert.True(length < 1 << 16, $"option reply of {length} B");
            if (c.TryReceive((int)length) is null)
                return;
        }
    }

    private static int DrainReplies(NbdTestClient c, int requests)
    {
        var replies = 0;
        while (true)
        {
            var header = c.TryReceive(SimpleReplyHeaderSize);
            if (header is null)
                return replies;
            Assert.Equal(SimpleReplyMagic, BinaryPrimitives.ReadUInt32BigEndian(header));
            var handle = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
            Assert.True(handle < (ulong)requests, $"reply for unknown handle {handle}");
            replies++;
            // A successful read's data follows; the test does not track which handle was a read of what length, so it stops here.
            if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) == 0)
            {
                Assert.True(c.IsClosedByServer(), "the server did not close after the client half-closed");
                return replies;
            }
        }
    }
}
