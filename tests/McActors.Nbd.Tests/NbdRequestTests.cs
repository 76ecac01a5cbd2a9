using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd.Tests;

/// <summary>Which transmission requests may reach the export, without a connection.</summary>
public sealed class NbdRequestTests
{
    private const long Size = 1 << 20;
    private static readonly NbdOptions Options = NbdOptions.From(Akka.Configuration.Config.Empty);

    private static uint Check(ushort type, ulong offset, uint length, ushort flags = 0) =>
        new NbdRequest(RequestMagic, flags, type, Handle: 1, offset, length).Check(Size, Options);

    [Fact]
    public void Aligned_requests_inside_the_export_pass_and_a_flush_needs_no_range()
    {
        Assert.Equal(0u, Check(CmdRead, 0, 4096));
        Assert.Equal(0u, Check(CmdWrite, Size - 512, 512, CmdFlagFua));
        Assert.Equal(0u, Check(CmdWriteZeroes, 512, 1024, CmdFlagNoHole));
        Assert.Equal(0u, Check(CmdFlush, ulong.MaxValue, uint.MaxValue));
    }

    [Fact]
    public void Past_the_end_a_write_is_out_of_space_a_read_is_invalid()
    {
        Assert.Equal(ENoSpc, Check(CmdWrite, Size, 512));
        Assert.Equal(ENoSpc, Check(CmdWriteZeroes, Size - 512, 1024));
        Assert.Equal(EInval, Check(CmdRead, Size - 512, 1024));
        Assert.Equal(EInval, Check(CmdRead, ulong.MaxValue - 100, 512)); // no overflow into range
    }

    [Fact]
    public void Unaligned_oversized_unknown_or_wrongly_flagged_requests_are_invalid()
    {
        Assert.Equal(EInval, Check(CmdWrite, 100, 512));
        Assert.Equal(EInval, Check(CmdRead, 0, 100));
        Assert.Equal(EInval, Check(CmdRead, 0, (uint)Options.MaxPayloadBytes + 512));
        Assert.Equal(EInval, Check(99, 0, 512));
        Assert.Equal(EInval, Check(CmdRead, 0, 512, CmdFlagFua));
        Assert.Equal(EInval, Check(CmdFlush, 0, 0, CmdFlagFua));
    }
}
