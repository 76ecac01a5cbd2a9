using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Testing;
using Xunit.Abstractions;

namespace McActors.Testing.Tests;

/// <summary>Two ActorSystems over real TCP remoting with the throttle adapter: A (the test's) and B (an echo).</summary>
public sealed class NetworkFaultsTests : TestKit
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(1);
    private readonly ActorSystem _b;
    private readonly TestProbe _atB;
    private readonly IActorRef _echo;

    public NetworkFaultsTests(ITestOutputHelper output) : base(Systems.Remote(), "a", output)
    {
        _b = ActorSystem.Create("b", Systems.Remote());
        _atB = CreateTestProbe(_b, "at-b");
        _b.ActorOf(Props.Create(() => new EchoActor(_atB.Ref)), "echo");
        Sys.ActorSelection(new RootActorPath(Systems.AddressOf(_b)) / "user" / "echo").Tell(new Identify(1));
        _echo = ExpectMsg<ActorIdentity>(TimeSpan.FromSeconds(10)).Subject ?? throw new InvalidOperationException("no echo at B");
    }

    private Address B => Systems.AddressOf(_b);

    /// <summary>After a heal the association may need a moment: send until one arrives, keeping all that arrive.</summary>
    private List<object> SendUntilEchoed(string message)
    {
        var received = new List<object>();
        AwaitCondition(() =>
        {
            _echo.Tell(message);
            var m = ReceiveOne(TimeSpan.FromMilliseconds(300));
            if (m is not null)
                received.Add(m);
            return m is string s && s == message;
        }, TimeSpan.FromSeconds(15));
        return received;
    }

    [Fact]
    public async Task A_blackholed_link_loses_messages_and_a_healed_one_delivers_again()
    {
        _echo.Tell("before");
        ExpectMsg("before");
        _atB.ExpectMsg("before");

        await NetworkFaults.BlackholeAsync(Sys, B);
        _echo.Tell("lost");
        ExpectNoMsg(Quiet);
        _atB.ExpectNoMsg(TimeSpan.Zero); // lost on the way there, not on the way back

        await NetworkFaults.HealAsync(Sys, B);
        var received = SendUntilEchoed("after");
        Assert.DoesNotContain("lost", received); // lost for good, not late
        _atB.FishForMessage(m => m is "after");
    }

    [Fact]
    public async Task A_receive_blackhole_lets_messages_out_but_loses_the_replies()
    {
        await NetworkFaults.BlackholeAsync(Sys, B, LinkDirection.Receive);
        _echo.Tell("one way");
        _atB.ExpectMsg("one way"); // B got it...
        ExpectNoMsg(Quiet);        // ...its answer never came back

        await NetworkFaults.HealAsync(Sys, B, LinkDirection.Receive);
        SendUntilEchoed("both ways");
    }

    [Fact]
    public async Task Without_the_throttle_adapter_blackholing_fails_loudly()
    {
        using var plain = ActorSystem.Create("plain", Akka.Configuration.ConfigurationFactory.ParseString(
            "akka.remote.dot-netty.tcp.applied-adapters = []").WithFallback(Systems.Remote()));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => NetworkFaults.BlackholeAsync(plain, B));
        Assert.Contains("throttle transport adapter", e.Message);
        await plain.Terminate();
    }

    protected override void AfterAll()
    {
        _b.Terminate().Wait(TimeSpan.FromSeconds(10));
        base.AfterAll();
    }
}
