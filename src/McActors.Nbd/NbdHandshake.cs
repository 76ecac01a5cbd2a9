using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd;

/// <summary>
/// The fixed newstyle handshake of one connection: option haggling (LIST, INFO, GO, EXPORT_NAME,
/// ABORT) until the client picks an export or leaves. Its own class because nothing of it outlives
/// the handshake: transmission starts from the export it returns. The only writer while it runs.
/// </summary>
internal sealed class NbdHandshake(PipeReader reader, PipeWriter writer, INbdExportSource source, NbdOptions options, Action<string> log, string peer)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The export the client chose, or null if it aborted or was refused (the connection then closes).</summary>
    public async Task<INbdExport?> NegotiateAsync(CancellationToken cancel)
    {
        var hello = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(hello, InitMagic);
        BinaryPrimitives.WriteUInt64BigEndian(hello.AsSpan(8), OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(16), FlagFixedNewstyle | FlagNoZeroes);
        await SendAsync(hello, cancel).ConfigureAwait(false);

        var clientFlags = BinaryPrimitives.ReadUInt32BigEndian(await reader.ReadExactAsync(4, cancel).ConfigureAwait(false));
        if ((clientFlags & ~(ClientFlagFixedNewstyle | ClientFlagNoZeroes)) != 0)
            throw new NbdProtocolViolation($"unknown client flags 0x{clientFlags:x8}");
        var noZeroes = (clientFlags & ClientFlagNoZeroes) != 0;

        while (true)
        {
            var header = await reader.ReadExactAsync(16, cancel).ConfigureAwait(false);
            var magic = BinaryPrimitives.ReadUInt64BigEndian(header);
            if (magic != OptionMagic)
                throw new NbdProtocolViolation($"bad option magic 0x{magic:x16}");
            var option = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            if (length > options.MaxOptionBytes)
            {
                if (option == OptExportName)
                    throw new NbdProtocolViolation($"export name of {length} B"); // no error reply exists for it
                await reader.SkipAsync(length, cancel).ConfigureAwait(false);
                await ReplyOptionAsync(option, RepErrTooBig, $"option data of {length} B exceeds {options.MaxOptionBytes} B", cancel).ConfigureAwait(false);
                continue;
            }
            var data = await reader.ReadExactAsync((int)length, cancel).ConfigureAwait(false);
            switch (option)
            {
                case OptExportName:
                {
                    var name = DecodeName(data) ?? throw new NbdProtocolViolation("export name is not UTF-8");
                    var export = source.Find(name, out _, out var why);
                    if (export is null)
                    {
                        // NBD_OPT_EXPORT_NAME has no error reply: the spec says close.
                        log($"nbd {peer}: export '{name}' refused: {why}");
                        return null;
                    }
                    var reply = new byte[noZeroes ? 10 : 134];
                    BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)export.SizeBytes);
                    BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), TransmissionFlags(export));
                    await SendAsync(reply, cancel).ConfigureAwait(false);
                    return export;
                }
                case OptAbort:
                    await ReplyOptionAsync(option, RepAck, [], cancel).ConfigureAwait(false);
                    return null;
                case OptList:
                    await ListAsync(data, cancel).ConfigureAwait(false);
                    break;
                case OptInfo:
                case OptGo:
                {
                    var export = await InfoAsync(option, data, cancel).ConfigureAwait(false);
                    if (export is not null && option == OptGo)
                        return export;
                    break;
                }
                default:
                    await ReplyOptionAsync(option, RepErrUnsup, $"option {option} is not supported by this server", cancel).ConfigureAwait(false);
                    break;
            }
        }
    }

    private async Task ListAsync(byte[] data, CancellationToken cancel)
    {
        if (data.Length != 0)
        {
            await ReplyOptionAsync(OptList, RepErrInvalid, "NBD_OPT_LIST carries no data", cancel).ConfigureAwait(false);
            return;
        }
        if (source.Find("", out _, out var why) is null)
        {
            await ReplyOptionAsync(OptList, RepErrPolicy, why, cancel).ConfigureAwait(false);
            return;
        }
        foreach (var name in source.Names)
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            var entry = new byte[4 + bytes.Length];
            BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)bytes.Length);
            bytes.CopyTo(entry, 4);
            await ReplyOptionAsync(OptList, RepServer, entry, cancel).ConfigureAwait(false);
        }
        await ReplyOptionAsync(OptList, RepAck, [], cancel).ConfigureAwait(false);
    }

    /// <summary>NBD_OPT_INFO / NBD_OPT_GO: the export's size, flags and block sizes, then ACK; null if refused.</summary>
    private async Task<INbdExport?> InfoAsync(uint option, byte[] data, CancellationToken cancel)
    {
        var nameLength = data.Length >= 4 ? BinaryPrimitives.ReadUInt32BigEndian(data) : uint.MaxValue;
        if (data.Length < 6 || nameLength > data.Length - 6)
        {
            await ReplyOptionAsync(option, RepErrInvalid, "malformed request: name length exceeds the option data", cancel).ConfigureAwait(false);
            return null;
        }
        var requests = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength));
        var name = DecodeName(data.AsSpan(4, (int)nameLength).ToArray());
        if (name is null || 4 + nameLength + 2 + 2L * requests != data.Length)
        {
            await ReplyOptionAsync(option, RepErrInvalid, name is null ? "export name is not UTF-8" : "malformed request: information request count does not match the option length", cancel)
                .ConfigureAwait(false);
            return null;
        }
        var wantsName = false;
        for (var i = 0; i < requests; i++)
            wantsName |= BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength + 2 + 2 * i)) == InfoName;
        var export = source.Find(name, out var refusal, out var why);
        if (export is null)
        {
            await ReplyOptionAsync(option, refusal, why, cancel).ConfigureAwait(false);
            return null;
        }
        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.SizeBytes);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), TransmissionFlags(export));
        await ReplyOptionAsync(option, RepInfo, info, cancel).ConfigureAwait(false);
        if (wantsName)
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            var named = new byte[2 + bytes.Length];
            BinaryPrimitives.WriteUInt16BigEndian(named, InfoName);
            bytes.CopyTo(named, 2);
            await ReplyOptionAsync(option, RepInfo, named, cancel).ConfigureAwait(false);
        }
        // Sent whether asked or not (the spec allows it): a client that did not ask still gets a clean EINVAL for unaligned requests.
        var sizes = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(sizes, InfoBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(2), (uint)options.MinBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(6), (uint)options.PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(10), (uint)options.MaxPayloadBytes);
        await ReplyOptionAsync(option, RepInfo, sizes, cancel).ConfigureAwait(false);
        await ReplyOptionAsync(option, RepAck, [], cancel).ConfigureAwait(false);
        return export;
    }

    private static ushort TransmissionFlags(INbdExport export) =>
        (ushort)(TransHasFlags | TransSendFlush | TransSendFua | TransSendTrim | TransSendWriteZeroes
                 | (export.FlushCoversAllConnections ? TransCanMultiConn : 0));

    private static string? DecodeName(byte[] bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private Task ReplyOptionAsync(uint option, uint type, string message, CancellationToken cancel) =>
        ReplyOptionAsync(option, type, Encoding.UTF8.GetBytes(message), cancel);

    private async Task ReplyOptionAsync(uint option, uint type, byte[] data, CancellationToken cancel)
    {
        var reply = new byte[20 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(reply, OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(16), (uint)data.Length);
        data.CopyTo(reply, 20);
        await SendAsync(reply, cancel).ConfigureAwait(false);
    }

    private async ValueTask SendAsync(byte[] bytes, CancellationToken cancel)
    {
        await writer.WriteAsync(bytes, cancel).ConfigureAwait(false);
    }
}
