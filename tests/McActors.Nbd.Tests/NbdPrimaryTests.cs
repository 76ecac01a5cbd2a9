using System.Net;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Protocol;
using McActors.Replication;
using Xunit.Abstractions;
using static McActors.Nbd.NbdProtocol;

namespace McActors.Nbd.Tests;

/// <summary>
/// The NBD server, the NBD guest and a real <see cref="PrimaryActor"/> on a real image, with a
/// TestProbe as the coordinator: a client's FLUSH and FUA write are answered only at the commit
/// of the checkpoint that covers them, and a FLUSH asks for that checkpoint at once.
/// </summary>
public sealed class NbdPrimaryTests : TestKit, IAsyncLifetime
{
    private const long VolumeSize = 4 << 20;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _directory = new("mcactors-nbd-primary");
    private readonly NbdExportSlot _slot = new("volume", "p");
    private readonly TestProbe _coordinator;
    private NbdServer _server = null!;

    public NbdPrimaryTests(ITestOutputHelper output)
        : base(McActorsSettings.DefaultConfig, output: output) =>
        _coordinator = CreateTestProbe("coordinator");

    public Task InitializeAsync()
    {
        _server = NbdServer.Start(new IPEndPoint(IPAddress.Loopback, 0), _slot, NbdServerFixture.Options);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        Shutdown();
        await _server.DisposeAsync();
        _directory.Dispose();
    }

    private IActorRef StartPrimary(int minReplicas = 0)
    {
        var settings = McActorsSettings.From(Sys.Settings.Config) with { PrepareTimeout = TimeSpan.FromSeconds(30), MinReplicas = minReplicas };
        var volume = new VolumeSpec(Guid.NewGuid(), VolumeSize, 4096);
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _directory.Path, _coordinator.Ref, settings,
            guest => NbdGuestActor.Props(guest, _slot, 4096)), "primary");
        primary.Tell(new AssignPrimary(1, volume, [], LastCommitted: 0), _coordinator.Ref);
        _coordinator.ExpectMsg<RoleAssumed>(Patience);
        AwaitCondition(() => _slot.Current is not null, Patience);
        return primary;
    }

    private void Close(IActorRef primary, long epoch)
    {
        primary.Tell(new CloseEpoch(1, epoch), _coordinator.Ref);
        Assert.Equal(epoch, _coordinator.ExpectMsg<EpochClosed>(Patience).Epoch);
    }

    [Fact]
    public void Writes_are_answered_at_the_commit_of_their_checkpoint_and_reads_and_flushes_at_once()
    {
        var primary = StartPrimary();
        using var client = new NbdTestClient(_server.Endpoint);
        Assert.Equal(VolumeSize, client.Go().Size);

        var pattern = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
        client.SendRequest(CmdWrite, 8, 4096, 8192, payload: pattern);
        Assert.Equal(1, _coordinator.ExpectMsg<CheckpointNow>(Patience).Generation); // a reply waits: close the epoch now
        // Applied, not committed: a read sees it, a FLUSH (nothing completed to cover) is answered, the write is not.
        Assert.Equal(pattern, client.Call(CmdRead, 4096, 8192, handle: 20).Data);
        Assert.Equal(0u, client.Call(CmdFlush, 0, 0, handle: 21).Error);
        Close(primary, 1); // the NBD guest paused, gave its state blob, resumed
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Equal(0, client.Available); // closed is not committed: no answer yet
        primary.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        Assert.Equal((0u, 8ul), client.ReceiveReply());

        client.SendRequest(CmdWrite, 10, 0, 512, CmdFlagFua, new byte[512]);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Close(primary, 2);
        Assert.Equal(0, client.Available);
        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref);
        Assert.Equal((0u, 10ul), client.ReceiveReply());

        client.SendRequest(CmdWriteZeroes, 11, 4096, 4096);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Close(primary, 3);
        primary.Tell(new Commit(1, 3, 1), _coordinator.Ref);
        Assert.Equal((0u, 11ul), client.ReceiveReply());
        Assert.Equal(new byte[4096], client.Call(CmdRead, 4096, 4096).Data);
        Assert.Equal(pattern[4096..], client.Call(CmdRead, 8192, 4096).Data);
    }

    [Fact]
    public void Pipelined_writes_share_one_checkpoint_and_a_commit_asks_again_for_the_open_epoch()
    {
        var primary = StartPrimary();
        using var client = new NbdTestClient(_server.Endpoint);
        client.Go();
        for (var i = 0; i < 6; i++)
            client.SendRequest(CmdWrite, (ulong)(100 + i), (ulong)(i * 4096), 4096, payload: new byte[4096]);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        AwaitAssert(() => Assert.Equal(6, primary.Ask<PrimaryStatus>(GetPrimaryStatus.Instance, Patience).Result.Writes), Patience);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // group commit: one ask for the epoch, not one per write
        Close(primary, 1);

        // The next epoch's write asks while checkpoint 1 commits (several in flight).
        client.SendRequest(CmdWrite, 200, 65536, 4096, payload: new byte[4096]);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Assert.Equal(0, client.Available);

        // Say the coordinator dropped that ask (max-in-flight reached): the commit of 1 frees a slot, so the primary asks again.
        primary.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        var replies = Enumerable.Range(0, 6).Select(_ => client.ReceiveReply()).ToList();
        Assert.All(replies, r => Assert.Equal(0u, r.Error));
        Assert.Equal(Enumerable.Range(100, 6).Select(h => (ulong)h).Order(), replies.Select(r => r.Handle).Order());
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Assert.Equal(0, client.Available);
        Close(primary, 2);
        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref);
        Assert.Equal((0u, 200ul), client.ReceiveReply());
    }

    [Fact]
    public void A_write_reply_waits_for_a_commit_on_min_replicas_secondaries()
    {
        var primary = StartPrimary(minReplicas: 1);
        using var client = new NbdTestClient(_server.Endpoint);
        client.Go();
        client.SendRequest(CmdWrite, 4, 0, 4096, payload: new byte[4096]);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Close(primary, 1);
        // Committed with the set down to the primary alone: the reply would promise a copy nobody has.
        primary.Tell(new Commit(1, 1, 0), _coordinator.Ref);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(0, client.Available);
        Close(primary, 2);
        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref); // a later checkpoint on a secondary covers it
        Assert.Equal((0u, 4ul), client.ReceiveReply());
    }

    [Fact]
    public void When_the_primary_stops_its_connections_close_and_the_export_is_refused()
    {
        var primary = StartPrimary();
        using var client = new NbdTestClient(_server.Endpoint);
        client.Go();
        client.SendRequest(CmdWrite, 3, 0, 512, payload: new byte[512]); // never committed: must not be acknowledged
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Watch(primary);
        Sys.Stop(primary);
        ExpectTerminated(primary);
        Assert.Equal((EShutdown, 3ul), client.ReceiveReply()); // answered with an error before the close, never with success
        Assert.True(client.IsClosedByServer());
        _slot.SetPrimary("q", "127.0.0.1:1");
        using var again = new NbdTestClient(_server.Endpoint);
        again.Greet();
        again.SendOption(OptGo, NbdTestClient.GoData(""));
        Assert.Equal(RepErrUnknown, again.ReceiveOptionReply().Type);
    }
}
