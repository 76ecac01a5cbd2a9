using System.Buffers.Binary;
using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;

namespace McActors.Node.Bench;

/// <summary>
/// The same write stream as the data plane's, sent as Akka.Remote messages between two actor
/// systems on 127.0.0.1: raw <c>byte[]</c> (Akka's byte-array serializer, its fastest path), with
/// the same window of unacknowledged bytes and cumulative acks. The baseline the data plane is
/// measured against.
/// </summary>
public static class AkkaRemoteStream
{
    public static async Task<double> MegabytesPerSecondAsync(long totalBytes, int writeSize, long windowBytes, CancellationToken cancel)
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            # The systems are torn down while associated; their disassociation noise says nothing here.
            akka.loglevel = OFF
            akka.remote.log-remote-lifecycle-events = off
            akka.remote.dot-netty.tcp {
              hostname = "127.0.0.1"
              port = 0
              # Room for one write plus Akka's envelope; the default 128000 b would drop them.
              maximum-frame-size = {{writeSize + 16384}}b
            }
            """);
        using var receiverSystem = ActorSystem.Create("stream-receiver", config);
        using var senderSystem = ActorSystem.Create("stream-sender", config);
        var receiverAddress = ((ExtendedActorSystem)receiverSystem).Provider.DefaultAddress;
        receiverSystem.ActorOf(Props.Create(() => new Receiver()), "receiver");
        var remote = await senderSystem.ActorSelection($"{receiverAddress}/user/receiver").ResolveOne(TimeSpan.FromSeconds(10), cancel);

        var writes = Math.Max(1, totalBytes / writeSize);
        var done = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var window = (int)Math.Max(1, windowBytes / writeSize);
        senderSystem.ActorOf(Props.Create(() => new Sender(remote, writes, writeSize, window, done)), "sender");
        await using (cancel.Register(() => done.TrySetCanceled()))
        {
            var elapsed = await done.Task.WaitAsync(TimeSpan.FromMinutes(5), cancel);
            return writes * (double)writeSize / elapsed.TotalSeconds / 1e6;
        }
    }

    /// <summary>Counts writes; acknowledges every 16th (and each one it is told is the last) with the count so far.</summary>
    private sealed class Receiver : ReceiveActor
    {
        private const int AckEvery = 16;
        private long _count;

        public Receiver() =>
            Receive<byte[]>(data =>
            {
                _count++;
                if (_count % AckEvery == 0 || data.Length == 0)
                {
                    var ack = new byte[8];
                    BinaryPrimitives.WriteInt64LittleEndian(ack, _count);
                    Sender.Tell(ack);
                }
            });
    }

    /// <summary>Keeps up to <c>window</c> writes unacknowledged; an empty message at the end asks for the final ack.</summary>
    private sealed class Sender : ReceiveActor
    {
        private readonly IActorRef _receiver;
        private readonly long _writes;
        private readonly int _window;
        private readonly byte[] _data;
        private readonly TaskCompletionSource<TimeSpan> _done;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _sent;

        public Sender(IActorRef receiver, long writes, int writeSize, int window, TaskCompletionSource<TimeSpan> done)
        {
            _receiver = receiver;
            _writes = writes;
            _window = window;
            _done = done;
            _data = new byte[writeSize];
            Random.Shared.NextBytes(_data);
            Receive<byte[]>(ack =>
            {
                var acked = BinaryPrimitives.ReadInt64LittleEndian(ack);
                if (acked >= _writes + 1)
                {
                    _done.TrySetResult(_clock.Elapsed);
                    Context.Stop(Self);
                    return;
                }
                Fill(acked);
            });
        }

        protected override void PreStart() => Fill(0);

        private void Fill(long acked)
        {
            while (_sent < _writes && _sent - acked < _window)
            {
                _receiver.Tell(_data, Self);
                _sent++;
            }
            if (_sent == _writes)
            {
                _receiver.Tell(Array.Empty<byte>(), Self); // the end marker: asks for the final ack
                _sent++;
            }
        }
    }
}
