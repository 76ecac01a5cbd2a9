using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd.Tests;

/// <summary>A raw, blocking NBD client for tests: every read has a timeout, so a hung server fails the test instead of hanging it.</summary>
internal sealed class NbdTestClient : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly Socket _socket;

    public NbdTestClient(IPEndPoint server)
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        {
            ReceiveTimeout = (int)Timeout.TotalMilliseconds,
            SendTimeout = (int)Timeout.TotalMilliseconds,
            NoDelay = true,
        };
        _socket.Connect(server);
    }

    public ushort HandshakeFlags { get; private set; }

    public void Dispose() => _socket.Dispose();

    /// <summary>Bytes received and not read yet (a reply that should not have come).</summary>
    public int Available => _socket.Available;

    public void Send(ReadOnlySpan<byte> bytes) => _socket.Send(bytes);

    /// <summary>Half-closes: the server sees the end of the stream after what was sent.</summary>
    public void Shutdown() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>Exactly <paramref name="count"/> bytes, or null if the server closed first.</summary>
    public byte[]? TryReceive(int count)
    {
        var buffer = new byte[count];
        var got = 0;
        try
        {
            while (got < count)
            {
                var n = _socket.Receive(buffer, got, count - got, SocketFlags.None);
                if (n == 0)
                    return null;
                got += n;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return null; // closed with unread data on the server's side: a close all the same
        }
        return buffer;
    }

    public byte[] Receive(int count) => TryReceive(count) ?? throw new IOException($"server closed the connection (wanted {count} B)");

    /// <summary>True if the server closed the connection (reads end), within the timeout.</summary>
    public bool IsClosedByServer()
    {
        try
        {
            var buffer = new byte[4096];
            while (true)
            {
                if (_socket.Receive(buffer) == 0)
                    return true;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
        {
            return false;
        }
    }

    /// <summary>Reads the greeting and sends client flags (fixed newstyle, no zeroes unless told otherwise).</summary>
    public void Greet(uint clientFlags = ClientFlagFixedNewstyle | ClientFlagNoZeroes)
    {
        var hello = Receive(18);
        Assert.Equal(InitMagic, BinaryPrimitives.ReadUInt64BigEndian(hello));
        Assert.Equal(OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(hello.AsSpan(8)));
        HandshakeFlags = BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(16));
        var flags = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(flags, clientFlags);
        Send(flags);
    }

    public void SendOption(uint option, ReadOnlySpan<byte> data, uint? claimedLength = null)
    {
        var header = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(header, OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), claimedLength ?? (uint)data.Length);
        Send(header);
        Send(data);
    }

    public (uint Option, uint Type, byte[] Data) ReceiveOptionReply()
    {
        var header = Receive(20);
        Assert.Equal(OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        Assert.True(length < 1 << 20, $"option reply of {length} B");
        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), Receive((int)length));
    }

    public static byte[] GoData(string name, params ushort[] infos)
    {
        var n = Encoding.UTF8.GetBytes(name);
        var data = new byte[4 + n.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)n.Length);
        n.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + n.Length), (ushort)infos.Length);
        for (var i = 0; i < infos.Length; i++)
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + n.Length + 2 + 2 * i), infos[i]);
        return data;
    }

    /// <summary>Greets and negotiates with NBD_OPT_GO; returns the INFO_EXPORT size and transmission flags.</summary>
    public (long Size, ushort Flags) Go(string name = "", bool greet = true)
    {
        if (greet)
            Greet();
        SendOption(OptGo, GoData(name, InfoBlockSize));
        long size = -1;
        ushort flags = 0;
        while (true)
        {
            var (option, type, data) = ReceiveOptionReply();
            Assert.Equal(OptGo, option);
            if (type == RepAck)
                return (size, flags);
            Assert.Equal(RepInfo, type);
            if (BinaryPrimitives.ReadUInt16BigEndian(data) == InfoExport)
            {
                size = (long)BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(2));
                flags = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
            }
        }
    }

    public void SendRequest(ushort type, ulong handle, ulong offset, uint length, ushort flags = 0, byte[]? payload = null, uint magic = RequestMagic)
    {
        var header = new byte[RequestHeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(header, magic);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), handle);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(24), length);
        Send(header);
        if (payload is not null)
            Send(payload);
    }

    public (uint Error, ulong Handle) ReceiveReply()
    {
        var reply = Receive(SimpleReplyHeaderSize);
        Assert.Equal(SimpleReplyMagic, BinaryPrimitives.ReadUInt32BigEndian(reply));
        return (BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4)), BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(8)));
    }

    /// <summary>One request, its reply's error (and data of a successful READ of <paramref name="length"/>).</summary>
    public (uint Error, byte[] Data) Call(ushort type, ulong offset, uint length, ushort flags = 0, byte[]? payload = null, ulong handle = 7)
    {
        SendRequest(type, handle, offset, length, flags, payload);
        var (error, got) = ReceiveReply();
        Assert.Equal(handle, got);
        return (error, error == 0 && type == CmdRead ? Receive((int)length) : []);
    }
}
