using System.Buffers.Binary;
using System.Text;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd.Tests;

/// <summary>The server over a real loopback socket with an in-memory export: every option, command and error path.</summary>
public sealed class NbdServerTests
{
    [Fact]
    public async Task Go_on_the_default_export_advertises_size_flags_and_block_sizes()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet();
        Assert.Equal(FlagFixedNewstyle | FlagNoZeroes, c.HandshakeFlags);
        c.SendOption(OptGo, NbdTestClient.GoData("", InfoBlockSize, InfoName));
        var replies = new List<(uint Type, byte[] Data)>();
        while (true)
        {
            var (option, type, data) = c.ReceiveOptionReply();
            Assert.Equal(OptGo, option);
            if (type == RepAck)
                break;
            replies.Add((type, data));
        }
        var export = Assert.Single(replies, r => BinaryPrimitives.ReadUInt16BigEndian(r.Data) == InfoExport).Data;
        Assert.Equal((ulong)NbdServerFixture.Size, BinaryPrimitives.ReadUInt64BigEndian(export.AsSpan(2)));
        Assert.Equal(TransHasFlags | TransSendFlush | TransSendFua | TransSendTrim | TransSendWriteZeroes | TransCanMultiConn,
            BinaryPrimitives.ReadUInt16BigEndian(export.AsSpan(10)));
        var sizes = Assert.Single(replies, r => BinaryPrimitives.ReadUInt16BigEndian(r.Data) == InfoBlockSize).Data;
        Assert.Equal((512u, 4096u, 65536u), (BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(2)),
            BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(6)), BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(10))));
        var name = Assert.Single(replies, r => BinaryPrimitives.ReadUInt16BigEndian(r.Data) == InfoName).Data;
        Assert.Equal("", Encoding.UTF8.GetString(name.AsSpan(2)));
        Assert.Equal(0u, c.Call(CmdFlush, 0, 0).Error); // in transmission now
    }

    [Fact]
    public async Task Info_then_go_by_name_on_one_connection()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet();
        c.SendOption(OptInfo, NbdTestClient.GoData("volume"));
        uint type;
        do
            (_, type, _) = c.ReceiveOptionReply();
        while (type == RepInfo);
        Assert.Equal(RepAck, type);
        c.SendOption(OptGo, NbdTestClient.GoData("volume"));
        do
            (_, type, _) = c.ReceiveOptionReply();
        while (type == RepInfo);
        Assert.Equal(RepAck, type);
        Assert.Equal(0u, c.Call(CmdRead, 0, 512).Error);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Export_name_enters_transmission_with_or_without_the_zero_padding(bool noZeroes)
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet(ClientFlagFixedNewstyle | (noZeroes ? ClientFlagNoZeroes : 0));
        c.SendOption(OptExportName, Encoding.UTF8.GetBytes("volume"));
        var reply = c.Receive(noZeroes ? 10 : 134);
        Assert.Equal((ulong)NbdServerFixture.Size, BinaryPrimitives.ReadUInt64BigEndian(reply));
        Assert.True((BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8)) & TransSendFlush) != 0);
        Assert.All(reply.Skip(10), b => Assert.Equal(0, b));
        Assert.Equal(0u, c.Call(CmdRead, 512, 512).Error);
    }

    [Fact]
    public async Task List_names_the_export_and_refuses_data()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet();
        c.SendOption(OptList, []);
        var (_, type, data) = c.ReceiveOptionReply();
        Assert.Equal(RepServer, type);
        Assert.Equal(6u, BinaryPrimitives.ReadUInt32BigEndian(data));
        Assert.Equal("volume", Encoding.UTF8.GetString(data.AsSpan(4, 6)));
        Assert.Equal(RepAck, c.ReceiveOptionReply().Type);
        c.SendOption(OptList, [1, 2, 3]);
        Assert.Equal(RepErrInvalid, c.ReceiveOptionReply().Type);
    }

    [Fact]
    public async Task Abort_is_acknowledged_and_closes()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet();
        c.SendOption(OptAbort, []);
        var (option, type, _) = c.ReceiveOptionReply();
        Assert.Equal((OptAbort, RepAck), (option, type));
        Assert.True(c.IsClosedByServer());
    }

    [Theory]
    [InlineData(OptStructuredReply)]
    [InlineData(OptStartTls)]
    [InlineData(4u)]
    [InlineData(0x7fffffffu)]
    public async Task Unknown_options_get_unsupported_and_negotiation_goes_on(uint option)
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet();
        c.SendOption(option, [9, 9]);
        var reply = c.ReceiveOptionReply();
        Assert.Equal((option, RepErrUnsup), (reply.Option, reply.Type));
        Assert.Equal(NbdServerFixture.Size, c.Go(greet: false).Size);
    }

    [Fact]
    public async Task Unknown_export_names_are_refused_by_go_and_closed_by_export_name()
    {
        await using var f = new NbdServerFixture();
        using (var c = f.Connect())
        {
            c.Greet();
            c.SendOption(OptGo, NbdTestClient.GoData("nope"));
            var (_, type, data) = c.ReceiveOptionReply();
            Assert.Equal(RepErrUnknown, type);
            Assert.Contains("nope", Encoding.UTF8.GetString(data));
        }
        using (var c = f.Connect())
        {
            c.Greet();
            c.SendOption(OptExportName, Encoding.UTF8.GetBytes("nope"));
            Assert.True(c.IsClosedByServer());
        }
    }

    [Fact]
    public async Task A_node_that_is_not_primary_refuses_with_the_primarys_address()
    {
        await using var f = new NbdServerFixture(attach: false);
        f.Slot.SetPrimary("replica-2", "127.0.0.1:10809");
        using (var c = f.Connect())
        {
            c.Greet();
            c.SendOption(OptGo, NbdTestClient.GoData(""));
            var (_, type, data) = c.ReceiveOptionReply();
            Assert.Equal(RepErrUnknown, type);
            Assert.Contains("the primary replica-2 serves NBD at 127.0.0.1:10809", Encoding.UTF8.GetString(data));
            c.SendOption(OptList, []);
            Assert.Equal(RepErrPolicy, c.ReceiveOptionReply().Type);
        }
        using (var c = f.Connect())
        {
            c.Greet();
            c.SendOption(OptExportName, []);
            Assert.True(c.IsClosedByServer());
        }
    }

    [Fact]
    public async Task Malformed_and_oversized_options_are_answered_without_losing_the_connection()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Greet();
        var bad = NbdTestClient.GoData("volume");
        BinaryPrimitives.WriteUInt32BigEndian(bad, 1000); // name longer than the option
        c.SendOption(OptGo, bad);
        Assert.Equal(RepErrInvalid, c.ReceiveOptionReply().Type);
        var counted = NbdTestClient.GoData("volume", InfoBlockSize);
        BinaryPrimitives.WriteUInt16BigEndian(counted.AsSpan(10), 5); // 5 info requests announced, 1 sent
        c.SendOption(OptInfo, counted);
        Assert.Equal(RepErrInvalid, c.ReceiveOptionReply().Type);
        c.SendOption(OptGo, new byte[100_000]); // above max-option-length: read, dropped, refused
        Assert.Equal(RepErrTooBig, c.ReceiveOptionReply().Type);
        c.SendOption(OptGo, NbdTestClient.GoData("volume", InfoBlockSize));
        uint type;
        do
            (_, type, _) = c.ReceiveOptionReply();
        while (type == RepInfo);
        Assert.Equal(RepAck, type);
    }

    [Fact]
    public async Task Bad_magic_unknown_client_flags_and_a_silent_client_are_closed()
    {
        await using var f = new NbdServerFixture(NbdServerFixture.Options with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) });
        using (var c = f.Connect())
        {
            c.Greet(0x80);
            Assert.True(c.IsClosedByServer());
        }
        using (var c = f.Connect())
        {
            c.Greet();
            c.Send(new byte[16]); // option header with a zero magic
            Assert.True(c.IsClosedByServer());
        }
        using (var c = f.Connect())
        {
            c.Receive(18); // greeted, says nothing
            Assert.True(c.IsClosedByServer());
        }
        using (var c = f.Connect())
        {
            c.Go();
            c.SendRequest(CmdRead, 1, 0, 512, magic: 0x12345678);
            Assert.True(c.IsClosedByServer());
        }
        f.AssertStillServes();
    }

    [Fact]
    public async Task Every_command_reaches_the_export()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        var (size, flags) = c.Go();
        Assert.Equal(NbdServerFixture.Size, size);
        Assert.True((flags & TransHasFlags) != 0);

        var pattern = Enumerable.Repeat((byte)0xab, 8192).ToArray();
        Assert.Equal(0u, c.Call(CmdWrite, 4096, 8192, payload: pattern).Error);
        Assert.Equal(pattern, c.Call(CmdRead, 4096, 8192).Data);
        Assert.Equal(0, f.Export.Durable[4096]);

        Assert.Equal(0u, c.Call(CmdFlush, 0, 0).Error);
        Assert.Equal(1, f.Export.Flushes);
        Assert.Equal(0xab, f.Export.Durable[4096]);

        var fua = Enumerable.Repeat((byte)0x5a, 512).ToArray();
        Assert.Equal(0u, c.Call(CmdWrite, 65536, 512, CmdFlagFua, fua).Error);
        Assert.Equal((1, 0x5a), (f.Export.FuaWrites, (int)f.Export.Durable[65536]));

        Assert.Equal(0u, c.Call(CmdWriteZeroes, 4096, 4096, CmdFlagNoHole).Error);
        Assert.Equal(new byte[4096], c.Call(CmdRead, 4096, 4096).Data);
        Assert.Equal(pattern[..4096], c.Call(CmdRead, 8192, 4096).Data);

        Assert.Equal(0u, c.Call(CmdTrim, 0, 65536, CmdFlagFua).Error);
        Assert.Equal(1, f.Export.Trims);

        Assert.Equal(0u, c.Call(CmdRead, (ulong)NbdServerFixture.Size - 512, 512).Error); // the last sector
        Assert.Equal(0u, c.Call(CmdWrite, 0, 0, payload: []).Error); // zero length

        c.SendRequest(CmdDisc, 99, 0, 0);
        Assert.True(c.IsClosedByServer());
    }

    [Fact]
    public async Task Invalid_requests_get_the_errors_the_spec_names_and_the_connection_goes_on()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Go();
        var size = (ulong)NbdServerFixture.Size;
        Assert.Equal(EInval, c.Call(CmdRead, size - 512, 1024).Error); // beyond the end
        Assert.Equal(EInval, c.Call(CmdRead, ulong.MaxValue - 511, 512).Error); // offset + length overflows
        Assert.Equal(ENoSpc, c.Call(CmdWrite, size, 512, payload: new byte[512]).Error);
        Assert.Equal(ENoSpc, c.Call(CmdWriteZeroes, size - 512, 4096).Error);
        Assert.Equal(EInval, c.Call(CmdTrim, size, 512).Error);
        Assert.Equal(EInval, c.Call(CmdRead, 100, 512).Error); // unaligned offset
        Assert.Equal(EInval, c.Call(CmdWrite, 0, 100, payload: new byte[100]).Error); // unaligned length
        Assert.Equal(EInval, c.Call(CmdRead, 0, 128 * 1024).Error); // above max payload
        Assert.Equal(EInval, c.Call(CmdWrite, 0, 128 * 1024, payload: new byte[128 * 1024]).Error); // payload skipped
        Assert.Equal(EInval, c.Call(5, 0, 512).Error); // NBD_CMD_CACHE: not negotiated
        Assert.Equal(EInval, c.Call(99, 0, 512).Error);
        Assert.Equal(EInval, c.Call(CmdRead, 0, 512, flags: CmdFlagFua).Error); // FUA on a read
        Assert.Equal(EInval, c.Call(CmdWrite, 0, 512, flags: 0x8000, payload: new byte[512]).Error);
        f.Export.FailAt = (1024, ENoSpc);
        Assert.Equal(ENoSpc, c.Call(CmdWrite, 1024, 512, payload: new byte[512]).Error);
        f.Export.FailAt = null;
        Assert.Equal(0u, c.Call(CmdWrite, 1024, 512, payload: Enumerable.Repeat((byte)7, 512).ToArray()).Error);
        Assert.Equal(7, c.Call(CmdRead, 1024, 512).Data[511]);
    }

    [Fact]
    public async Task Pipelined_requests_are_answered_in_completion_order_by_handle()
    {
        await using var f = new NbdServerFixture();
        f.Export.HoldReadsAt = 0;
        using var c = f.Connect();
        c.Go();
        c.SendRequest(CmdRead, 1, 0, 512);
        c.SendRequest(CmdWrite, 2, 4096, 512, payload: Enumerable.Repeat((byte)3, 512).ToArray());
        c.SendRequest(CmdRead, 3, 4096, 512);
        Assert.Equal((0u, 2ul), c.ReceiveReply());
        Assert.Equal((0u, 3ul), c.ReceiveReply());
        Assert.Equal(3, c.Receive(512)[0]);
        f.Export.Gate.SetResult();
        Assert.Equal((0u, 1ul), c.ReceiveReply());
        c.Receive(512);
    }

    [Fact]
    public async Task Disconnect_answers_requests_already_in_flight_first()
    {
        await using var f = new NbdServerFixture();
        f.Export.HoldReadsAt = 0;
        using var c = f.Connect();
        c.Go();
        c.SendRequest(CmdRead, 1, 0, 512);
        c.SendRequest(CmdDisc, 2, 0, 0);
        f.Export.Gate.SetResult();
        Assert.Equal((0u, 1ul), c.ReceiveReply());
        c.Receive(512);
        Assert.True(c.IsClosedByServer());
    }

    [Fact]
    public async Task A_stopping_server_answers_every_request_in_flight_with_eshutdown_before_closing()
    {
        var f = new NbdServerFixture();
        f.Export.HoldReadsAt = 0; // the export never finishes these reads
        using var c = f.Connect();
        c.Go();
        c.SendRequest(CmdRead, 1, 0, 512);
        c.SendRequest(CmdRead, 2, 0, 512);
        Assert.Equal(0u, c.Call(CmdWrite, 4096, 512, payload: new byte[512], handle: 3).Error); // the two reads are in flight
        await f.DisposeAsync();
        var replies = new[] { c.ReceiveReply(), c.ReceiveReply() };
        Assert.Equal([(EShutdown, 1ul), (EShutdown, 2ul)], replies.OrderBy(r => r.Handle));
        Assert.True(c.IsClosedByServer());
        f.Export.Gate.SetResult(); // the export finishing later sends nothing more (the connection is gone)
    }

    [Fact]
    public async Task An_export_that_goes_away_answers_every_request_in_flight_with_eshutdown()
    {
        await using var f = new NbdServerFixture();
        f.Export.HoldReadsAt = 0;
        using var c = f.Connect();
        c.Go();
        c.SendRequest(CmdRead, 5, 0, 512);
        Assert.Equal(0u, c.Call(CmdRead, 4096, 512, handle: 6).Error); // the held read is in flight
        f.Slot.Detach(f.Export);
        f.Export.Close();
        Assert.Equal((EShutdown, 5ul), c.ReceiveReply());
        Assert.True(c.IsClosedByServer());
    }

    [Fact]
    public async Task Several_connections_at_once_share_the_export()
    {
        await using var f = new NbdServerFixture();
        var clients = Enumerable.Range(0, 4).Select(_ => f.Connect()).ToList();
        try
        {
            clients.ForEach(c => c.Go());
            for (var i = 0; i < clients.Count; i++)
                Assert.Equal(0u, clients[i].Call(CmdWrite, (ulong)(i * 4096), 512, payload: Enumerable.Repeat((byte)(i + 1), 512).ToArray()).Error);
            Assert.Equal(0u, clients[0].Call(CmdFlush, 0, 0).Error);
            for (var i = 0; i < clients.Count; i++)
                Assert.Equal(i + 1, clients[(i + 1) % clients.Count].Call(CmdRead, (ulong)(i * 4096), 512).Data[0]);
            Assert.Equal(4, f.Server.Connections);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task An_export_that_goes_away_closes_its_connections_and_new_ones_are_refused()
    {
        await using var f = new NbdServerFixture();
        using var c = f.Connect();
        c.Go();
        Assert.Equal(0u, c.Call(CmdRead, 0, 512).Error);
        f.Slot.Detach(f.Export);
        f.Export.Close();
        Assert.True(c.IsClosedByServer());
        using var again = f.Connect();
        again.Greet();
        again.SendOption(OptGo, NbdTestClient.GoData(""));
        Assert.Equal(RepErrUnknown, again.ReceiveOptionReply().Type);
    }

    [Fact]
    public async Task Connections_beyond_the_limit_are_closed_at_once_and_the_others_served()
    {
        await using var f = new NbdServerFixture(NbdServerFixture.Options with { MaxConnections = 2 });
        using var a = f.Connect();
        using var b = f.Connect();
        a.Go();
        b.Go();
        using (var c = f.Connect())
            Assert.Null(c.TryReceive(18));
        Assert.Equal(0u, a.Call(CmdFlush, 0, 0).Error);
        b.Dispose();
        // The server notices the close on its own time: poll its count, as the process tests poll files.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (f.Server.Connections >= 2)
        {
            Assert.True(clock.Elapsed < NbdTestClient.Timeout, "the closed connection was never released");
            await Task.Delay(20);
        }
        f.AssertStillServes();
    }

    [Fact]
    public async Task A_client_vanishing_mid_request_leaves_the_server_up()
    {
        await using var f = new NbdServerFixture();
        using (var c = f.Connect())
        {
            c.Go();
            c.SendRequest(CmdWrite, 1, 0, 4096, payload: new byte[1000]); // payload cut short
        }
        using (var c = f.Connect())
        {
            c.Go();
            c.Send(new byte[10]); // header cut short
        }
        using (var c = f.Connect())
        {
            c.Greet();
            c.SendOption(OptGo, new byte[4], claimedLength: 40); // option data cut short
        }
        f.AssertStillServes();
    }
}
