using System.Net;

namespace McActors.Nbd.Tests;

/// <summary>An in-process NBD server on a free loopback port, serving a <see cref="MemoryExport"/>.</summary>
internal sealed class NbdServerFixture : IAsyncDisposable
{
    public const long Size = 1 << 20;

    // Small limits so the tests can exceed them cheaply.
    public static readonly NbdOptions Options = new("volume", MaxPayloadBytes: 64 * 1024, MaxOptionBytes: 64 * 1024, MinBlockSize: 512,
        PreferredBlockSize: 4096, MaxRequestsInFlight: 8, MaxBytesInFlight: 256 * 1024, HandshakeTimeout: TimeSpan.FromSeconds(5), ZeroChunkBytes: 4096);

    public NbdServerFixture(NbdOptions? options = null, bool attach = true)
    {
        Slot = new NbdExportSlot("volume", "test-node");
        Export = new MemoryExport(Size);
        if (attach)
            Slot.Attach(Export);
        Server = NbdServer.Start(new IPEndPoint(IPAddress.Loopback, 0), Slot, options ?? Options, Log.Add);
    }

    public NbdExportSlot Slot { get; }
    public MemoryExport Export { get; }
    public NbdServer Server { get; }
    public List<string> Log { get; } = [];

    public NbdTestClient Connect() => new(Server.Endpoint);

    /// <summary>A fresh client that reaches transmission and proves the server still serves: write, read back.</summary>
    public void AssertStillServes(long offset = 8192)
    {
        using var client = Connect();
        client.Go();
        var data = Enumerable.Range(0, 512).Select(i => (byte)(i * 31 + offset)).ToArray();
        Assert.Equal(0u, client.Call(NbdProtocol.CmdWrite, (ulong)offset, 512, payload: data).Error);
        var (error, read) = client.Call(NbdProtocol.CmdRead, (ulong)offset, 512);
        Assert.Equal(0u, error);
        Assert.Equal(data, read);
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
