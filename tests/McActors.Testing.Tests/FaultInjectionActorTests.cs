using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.Hosting;
using McActors.Node.Hosting;
using McActors.Testing;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>
/// /user/fault-injection driven from another ActorSystem over real remoting, as the chaos
/// observer drives a node: the messages cross the wire through Hyperion (src/McActors/reference.conf).
/// A is the observer (the test's system), B runs the fault-injection actor, C an echo.
/// </summary>
public sealed class FaultInjectionActorTests : TestKit
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(1);
    private readonly StoreFaultInjector _disk = new();
    private readonly ActorSystem _b;
    private readonly ActorSystem _c;
    private readonly TestProbe _atB;
    private readonly ActorSelection _faults;

    public FaultInjectionActorTests(ITestOutputHelper output) : base(Systems.Remote(), "a", output)
    {
        _b = ActorSystem.Create("b", Systems.Remote());
        _c = ActorSystem.Create("c", Systems.Remote());
        _atB = CreateTestProbe(_b, "at-b");
        _c.ActorOf(Props.Create(() => new EchoActor(ActorRefs.Nobody)), "echo");
        FaultInjection.Start(_b, _disk);
        var b = Systems.AddressOf(_b);
        _faults = Sys.ActorSelection(FaultConfig.FaultInjectionPath(b.Host!, b.Port!.Value, "b"));
    }

    private FaultInjected Ask(object message)
    {
        _faults.Tell(message);
        return ExpectMsg<FaultInjected>(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Store_faults_sent_from_another_system_switch_the_nodes_disk()
    {
        Assert.Contains("I/O error after 1 writes", Ask(new InjectStoreFault(StoreFaultKind.IOError, 1, TimeSpan.Zero)).Description);
        _disk.BeforeWrite("img", 0, 512);
        Assert.Throws<IOException>(() => _disk.BeforeWrite("img", 512, 512));

        Ask(new InjectStoreFault(StoreFaultKind.NoSpace, 0, TimeSpan.Zero));
        Assert.Equal(StoreFaultInjector.ENOSPC, Assert.Throws<IOException>(() => _disk.BeforeWrite("img", 0, 512)).HResult);

        Ask(new InjectStoreFault(StoreFaultKind.Heal, 0, TimeSpan.Zero));
        Assert.Contains("fsync 1 of any file fails", Ask(new InjectStoreFault(StoreFaultKind.SyncError, 0, TimeSpan.Zero)).Description);
        Assert.Equal(StoreFaultInjector.EIO, Assert.Throws<IOException>(() => _disk.BeforeSync("store.state")).HResult);
        _disk.BeforeSync("store.state"); // once, as Linux reports a lost writeback

        Assert.Contains("slow: 20 ms", Ask(new InjectStoreFault(StoreFaultKind.Slow, 0, TimeSpan.FromMilliseconds(20))).Description);
        _disk.BeforeWrite("img", 0, 512);

        Assert.Equal("store disk: healthy", Ask(new InjectStoreFault(StoreFaultKind.Heal, 0, TimeSpan.Zero)).Description);
        _disk.BeforeWrite("img", 0, 512);
        Assert.Equal(3, _disk.Failures); // the I/O error, ENOSPC and the fsync
    }

    [Fact]
    public void A_bad_request_is_answered_with_a_failure()
    {
        _faults.Tell(new InjectStoreFault(StoreFaultKind.IOError, -1, TimeSpan.Zero));
        Assert.IsType<ArgumentOutOfRangeException>(ExpectMsg<Status.Failure>().Cause);
        _faults.Tell(new BlackholeLink("not an address"));
        ExpectMsg<Status.Failure>();
        Assert.Equal("healthy", _disk.Description);
    }

    [Fact]
    public void A_link_blackholed_on_request_loses_messages_until_healed()
    {
        var c = Systems.AddressOf(_c);
        var echo = _b.ActorSelection(new RootActorPath(c) / "user" / "echo");
        echo.Tell("before", _atB.Ref);
        _atB.ExpectMsg("before", TimeSpan.FromSeconds(10));

        // The observer names C with the plain protocol, as a chaos runner that knows host:port would.
        var plain = $"akka.tcp://c@{c.Host}:{c.Port}";
        Assert.Contains("blackholed", Ask(new BlackholeLink(plain)).Description);
        echo.Tell("lost", _atB.Ref);
        _atB.ExpectNoMsg(Quiet);

        Assert.Contains("healed", Ask(new HealLink(plain)).Description);
        var received = new List<object>();
        AwaitCondition(() =>
        {
            echo.Tell("after", _atB.Ref);
            var m = _atB.ReceiveOne(TimeSpan.FromMilliseconds(300));
            if (m is not null)
                received.Add(m);
            return m is "after";
        }, TimeSpan.FromSeconds(15));
        Assert.DoesNotContain("lost", received);
    }

    [Fact]
    public void Fault_injection_is_off_by_default_and_on_it_applies_the_adapter_and_the_adapters_seed_addresses()
    {
        var defaults = HoconFiles.Load();
        Assert.False(FaultConfig.IsEnabled(defaults));
        Assert.Same(defaults, FaultConfig.ForNode(defaults));

        var on = FaultConfig.ForNode(HoconFiles.Load([
            "mcactors.testing.fault-injection = on", "akka.cluster.seed-nodes = [\"akka.tcp://mcactors@10.0.0.1:4053\"]"]));
        Assert.Equal(["trttl"], on.GetStringList("akka.remote.dot-netty.tcp.applied-adapters"));
        Assert.Equal(["akka.trttl.tcp://mcactors@10.0.0.1:4053"], on.GetStringList("akka.cluster.seed-nodes"));
    }

    [Fact]
    public async Task A_node_with_fault_injection_on_answers_at_user_fault_injection()
    {
        using var dir = new TempDirectory("mcactors-fi-node");
        var port = FreePort();
        var options = new NodeOptions(NodeKind.Arbiter, "arbiter", "127.0.0.1", port, [$"127.0.0.1:{port}"], dir.Sub("arbiter"),
            dir.Sub("coordinator.db"), 0, ["mcactors.testing.fault-injection = on", "akka.loglevel = INFO"]);
        using var stop = new CancellationTokenSource();
        var node = Task.Run(() => NodeHost.RunAsync(options, TextWriter.Null, stop.Token));

        var selection = Sys.ActorSelection(FaultConfig.FaultInjectionPath("127.0.0.1", port));
        await AwaitAssertAsync(() =>
        {
            selection.Tell(new InjectStoreFault(StoreFaultKind.Heal, 0, TimeSpan.Zero));
            Assert.Equal("store disk: healthy", ExpectMsg<FaultInjected>(TimeSpan.FromSeconds(1)).Description);
        }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));

        await stop.CancelAsync();
        Assert.Equal(NodeHost.ExitStopped, await node.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    protected override void AfterAll()
    {
        Task.WaitAll([_b.Terminate(), _c.Terminate()], TimeSpan.FromSeconds(20));
        base.AfterAll();
    }
}
