using System.Net;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using McActors.DataPlane;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using McActors.Testing;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>
/// A user's guide to McActors.Testing, as three small tests you can copy into your own TestKit
/// tests: cut a network link and heal it, make a store's disk fail, lose a data-plane frame.
/// </summary>
public sealed class ExampleFaultInjectionTests : TestKit
{
    // 1. Every ActorSystem of the test runs the throttle transport adapter (FaultConfig.ThrottleAdapter);
    //    here on top of the product's hocon/ files with plain remoting.
    public ExampleFaultInjectionTests(ITestOutputHelper output) : base(Systems.Remote(), "example", output)
    {
    }

    [Fact]
    public async Task Blackhole_a_link_then_heal_it()
    {
        // A second system with an actor that answers "pong".
        using var other = ActorSystem.Create("other", Systems.Remote());
        other.ActorOf(Props.Create(() => new EchoActor(ActorRefs.Nobody)), "echo");
        var otherAddress = ((ExtendedActorSystem)other).Provider.DefaultAddress;
        Sys.ActorSelection(new RootActorPath(otherAddress) / "user" / "echo").Tell(new Identify(null));
        var echo = ExpectMsg<ActorIdentity>(TimeSpan.FromSeconds(10)).Subject!;

        // Cut the link: messages are lost (not queued), both ways.
        await NetworkFaults.BlackholeAsync(Sys, otherAddress);
        echo.Tell("ping 1");
        ExpectNoMsg(TimeSpan.FromSeconds(1));

        // Heal it: new messages get through again; "ping 1" is gone for good.
        await NetworkFaults.HealAsync(Sys, otherAddress);
        AwaitAssert(() =>
        {
            echo.Tell("ping 2");
            ExpectMsg("ping 2", TimeSpan.FromMilliseconds(500));
        }, TimeSpan.FromSeconds(15));

        await other.Terminate();
    }

    [Fact]
    public void Make_the_stores_disk_fail()
    {
        using var dir = new TempDirectory("example-store");
        // 2. Give the store a StoreFaultInjector (a node: McActorsSettings.StoreFaults, or
        //    InjectStoreFault messages to /user/fault-injection with mcactors.testing.fault-injection = on).
        var disk = new StoreFaultInjector();
        using var store = RollbackStore.Create(dir.Path, new VolumeDescriptor(Guid.NewGuid(), 1 << 20, 4096),
            new RollbackStoreOptions { Faults = disk });
        store.Write(1, 0, new byte[4096]);
        store.Prepare(1);

        // The disk fills up: the next write the store makes fails with ENOSPC, as Linux reports it.
        disk.NoSpace();
        store.Write(2, 0, new byte[4096]);
        var full = Assert.Throws<IOException>(() => store.Prepare(2));
        Assert.Equal(StoreFaultInjector.ENOSPC, full.HResult);
        Assert.Equal(1, store.PreparedEpoch); // checkpoint 2 was never prepared

        // Other faults: disk.FailAfterWrites(n) (EIO after n more writes), disk.SlowWrites(delay), disk.Heal().
    }

    [Fact]
    public async Task Drop_a_data_plane_frame()
    {
        // 3. Put a DataPlaneProxy between the primary (a sender) and the secondary's listener.
        var volume = new DataPlaneVolume(Guid.NewGuid(), 4096);
        await using var secondary = new DataPlaneListener(new IPEndPoint(IPAddress.Loopback, 0), volume, new IgnoringHandler()).Start();
        await using var proxy = DataPlaneProxy.Start(secondary.LocalEndPoint);
        await using var primary = await DataPlaneSender.ConnectAsync(proxy.EndPoint, volume, generation: 1, firstSequence: 1);

        // Lose the next write frame: the secondary sees a hole in the sequence and closes the stream.
        proxy.DropNext(1, FrameType.Write);
        await primary.SendWriteAsync(1, 1, 0, new byte[4096]);
        await primary.SendWriteAsync(1, 2, 4096, new byte[4096]);
        var refused = await Assert.ThrowsAsync<DataPlaneRefusedException>(() => primary.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(DataPlaneErrorCode.SequenceGap, refused.Code);

        // Other faults: proxy.Delay(latency), proxy.Blackhole(), proxy.CutConnections(), proxy.Heal().
    }

    private sealed class IgnoringHandler : IDataPlaneHandler
    {
        public ValueTask OnWriteAsync(WriteFrame write, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask OnMarkerAsync(EpochMarkerFrame marker, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask OnGuestStateAsync(GuestStateFrame state, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
