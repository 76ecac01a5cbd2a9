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
        : base(ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(HoconFiles.DefaultFolder, "mcactors.conf"))), output: output) =>
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

    private IActorRef StartPrimary()
    {
        var settings = McActorsSettings.From(Sys.Settings.Config) with { PrepareTimeout = TimeSpan.FromSeconds(30) };
        var volume = new VolumeSpec(Guid.NewGuid(), VolumeSize, 4096);
        var primary = Sys.ActorOf(PrimaryActor.Props("p", _directory.Path, _coordinator.Ref, settings,
            disk => NbdGuestActor.Props(disk, _slot, VolumeSize, 4096)), "primary");
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
    public void Flush_and_fua_are_answered_at_the_commit_of_their_checkpoint_and_reads_see_writes()
    {
        var primary = StartPrimary();
        using var client = new NbdTestClient(_server.Endpoint);
        Assert.Equal(VolumeSize, client.Go().Size);

        var pattern = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(0u, client.Call(CmdWrite, 4096, 8192, payload: pattern).Error); // applied: answered at once
        Assert.Equal(pattern, client.Call(CmdRead, 4096, 8192).Data);

        client.SendRequest(CmdFlush, 9, 0, 0);
        Assert.Equal(1, _coordinator.ExpectMsg<CheckpointNow>(Patience).Generation);
        Close(primary, 1); // the NBD guest paused, gave its state blob, resumed
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Equal(0, client.Available); // closed is not committed: no answer yet
        primary.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        Assert.Equal((0u, 9ul), client.ReceiveReply());

        client.SendRequest(CmdWrite, 10, 0, 512, CmdFlagFua, new byte[512]);
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Close(primary, 2);
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Equal(0, client.Available);
        primary.Tell(new Commit(1, 2, 1), _coordinator.Ref);
        Assert.Equal((0u, 10ul), client.ReceiveReply());

        // With nothing written since the last commit, a FLUSH has nothing to wait for.
        Assert.Equal(0u, client.Call(CmdFlush, 0, 0).Error);
        Assert.Equal(0u, client.Call(CmdWriteZeroes, 4096, 4096).Error);
        Assert.Equal(new byte[4096], client.Call(CmdRead, 4096, 4096).Data);
        Assert.Equal(pattern[4096..], client.Call(CmdRead, 8192, 4096).Data);
    }

    [Fact]
    public void When_the_primary_stops_its_connections_close_and_the_export_is_refused()
    {
        var primary = StartPrimary();
        using var client = new NbdTestClient(_server.Endpoint);
        client.Go();
        Assert.Equal(0u, client.Call(CmdWrite, 0, 512, payload: new byte[512]).Error);
        client.SendRequest(CmdFlush, 3, 0, 0); // never committed: must not be acknowledged
        _coordinator.ExpectMsg<CheckpointNow>(Patience);
        Watch(primary);
        Sys.Stop(primary);
        ExpectTerminated(primary);
        var reply = client.TryReceive(SimpleReplyHeaderSize);
        if (reply is not null) // answered with an error before the close, never with success
            Assert.Equal(EShutdown, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4)));
        Assert.True(client.IsClosedByServer());
        _slot.SetPrimary("q", "127.0.0.1:1");
        using var again = new NbdTestClient(_server.Endpoint);
        again.Greet();
        again.SendOption(OptGo, NbdTestClient.GoData(""));
        Assert.Equal(RepErrUnknown, again.ReceiveOptionReply().Type);
    }
}
