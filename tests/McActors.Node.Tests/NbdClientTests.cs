using System.Net;
using McActors.Nbd;
using McActors.Node.Chaos.Nbd;

namespace McActors.Node.Tests;

/// <summary>The chaos NBD client and its reconnecting session against the real <see cref="NbdServer"/> (over an in-memory export).</summary>
public sealed class NbdClientTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static readonly NbdOptions Options = new("volume", MaxPayloadBytes: 1 << 20, MaxOptionBytes: 64 * 1024, MinBlockSize: 512,
        PreferredBlockSize: 4096, MaxRequestsInFlight: 64, MaxBytesInFlight: 4 << 20, HandshakeTimeout: TimeSpan.FromSeconds(5), ZeroChunkBytes: 4096);

    private readonly NbdExportSlot _slotA = new("volume", "node-a");
    private readonly NbdExportSlot _slotB = new("volume", "node-b");
    private NbdServer _a = null!;
    private NbdServer _b = null!;

    public Task InitializeAsync()
    {
        _a = NbdServer.Start(new IPEndPoint(IPAddress.Loopback, 0), _slotA, Options);
        _b = NbdServer.Start(new IPEndPoint(IPAddress.Loopback, 0), _slotB, Options);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    private string A => $"127.0.0.1:{_a.Endpoint.Port}";
    private string B => $"127.0.0.1:{_b.Endpoint.Port}";

    [Fact]
    public async Task The_client_negotiates_with_opt_go_and_round_trips_pipelined_requests()
    {
        var export = new TestExport(1 << 20);
        _slotA.Attach(export);
        await using var client = await NbdClient.ConnectAsync(A, "", Timeout, CancellationToken.None);
        Assert.Equal(1 << 20, client.SizeBytes);
        Assert.True(client.CanMultiConn && client.CanFua && client.CanFlush);
        Assert.Equal(512, client.MinBlockSize);

        // 32 writes in flight at once, every fourth with FUA, then all read back at once.
        var writes = Enumerable.Range(0, 32).Select(i => client.WriteAsync(i * 4096L, SectorPattern.Fill(1, i, i * 8, 8), fua: i % 4 == 0)).ToList();
        await Task.WhenAll(writes).WaitAsync(Timeout, CancellationToken.None);
        await client.FlushAsync().WaitAsync(Timeout, CancellationToken.None);
        var reads = Enumerable.Range(0, 32).Select(i => client.ReadAsync(i * 4096L, 4096)).ToList();
        var data = await Task.WhenAll(reads).WaitAsync(Timeout, CancellationToken.None);
        for (var i = 0; i < 32; i++)
            Assert.All(SectorPattern.DecodeAll(data[i], 1, i * 8), c => Assert.Equal(SectorContent.Of(i), c));
        Assert.Equal(8, export.FuaWrites);
        Assert.Equal(1, export.Flushes);
    }

    [Fact]
    public async Task An_error_reply_reaches_the_caller_as_its_nbd_error_and_the_connection_stays_up()
    {
        _slotA.Attach(new TestExport(1 << 20));
        await using var client = await NbdClient.ConnectAsync(A, "", Timeout, CancellationToken.None);
        var unaligned = await Assert.ThrowsAsync<NbdCommandException>(() => client.WriteAsync(100, new byte[512], fua: false));
        Assert.Equal(NbdProtocol.EInval, unaligned.Error);
        Assert.Contains("EINVAL", unaligned.Message, StringComparison.Ordinal);
        var beyond = await Assert.ThrowsAsync<NbdCommandException>(() => client.ReadAsync(1 << 20, 512));
        Assert.Equal(NbdProtocol.EInval, beyond.Error);
        Assert.Equal(512, (await client.ReadAsync(0, 512)).Length);
    }

    [Fact]
    public async Task A_refusal_names_the_primary()
    {
        _slotA.SetPrimary("node-b", B);
        var refused = await Assert.ThrowsAsync<NbdRefusedException>(() => NbdClient.ConnectAsync(A, "", Timeout, CancellationToken.None));
        Assert.Equal(B, refused.PrimaryAddress);
        Assert.Contains("not the primary", refused.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_a_failover_the_session_follows_the_refusal_to_the_new_primary_and_resends_what_was_in_flight()
    {
        var oldPrimary = new TestExport(1 << 20) { HoldWrites = true };
        var newPrimary = new TestExport(1 << 20);
        _slotA.Attach(oldPrimary);
        await using var session = new ReconnectingNbdSession(0, "", () => [A], Timeout, TimeSpan.FromMilliseconds(20));
        var payload = SectorPattern.Fill(7, 1, 16, 8);
        var write = session.CallAsync(async c =>
        {
            await c.WriteAsync(16 * 512, payload, fua: false);
            return true;
        }, CancellationToken.None);
        await oldPrimary.WriteArrived.Task.WaitAsync(Timeout, CancellationToken.None);

        // The old primary's role ends with the write unanswered; its node now names the new primary.
        _slotA.SetPrimary("node-b", B);
        _slotA.Detach(oldPrimary);
        oldPrimary.Close();
        _slotB.Attach(newPrimary);

        var (_, sends, server) = await write.WaitAsync(Timeout, CancellationToken.None);
        Assert.Equal(2, sends);
        Assert.Equal(B, server);
        Assert.Equal(1, session.Reconnects);
        Assert.Equal(payload, newPrimary.Data.AsSpan(16 * 512, payload.Length).ToArray());
        Assert.Contains(session.Refusals, r => r.Contains(B, StringComparison.Ordinal));
    }

    /// <summary>An in-memory export; with <see cref="HoldWrites"/> a write is taken and never answered (a primary that dies with it in flight).</summary>
    private sealed class TestExport(long size) : INbdExport
    {
        private readonly CancellationTokenSource _closed = new();
        private readonly Lock _lock = new();

        public byte[] Data { get; } = new byte[size];
        public long SizeBytes => Data.Length;
        public CancellationToken Closed => _closed.Token;
        public bool FlushCoversAllConnections => true;
        public bool HoldWrites { get; init; }
        public TaskCompletionSource WriteArrived { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int FuaWrites;
        public int Flushes;

        public void Close() => _closed.Cancel();

        public ValueTask<byte[]> ReadAsync(long offset, int length)
        {
            lock (_lock)
                return ValueTask.FromResult(Data.AsSpan((int)offset, length).ToArray());
        }

        public async ValueTask WriteAsync(long offset, byte[] data, bool fua)
        {
            WriteArrived.TrySetResult();
            if (HoldWrites)
                await Task.Delay(System.Threading.Timeout.Infinite, _closed.Token);
            lock (_lock)
            {
                data.CopyTo(Data, offset);
                if (fua)
                    FuaWrites++;
            }
        }

        public ValueTask WriteZeroesAsync(long offset, long length, bool fua) => throw new NotSupportedException();

        public ValueTask TrimAsync(long offset, long length, bool fua) => throw new NotSupportedException();

        public ValueTask FlushAsync()
        {
            Interlocked.Increment(ref Flushes);
            return ValueTask.CompletedTask;
        }
    }
}
