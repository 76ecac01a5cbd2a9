using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace McActors.Hosting;

/// <summary>
/// Stops a node whose whole process was paused (SIGSTOP, a stalled VM, a swap storm) for longer
/// than the cluster needs to down it. The others may have downed and removed it meanwhile without
/// it knowing: on waking, its view is stale (heartbeats buffered during the pause even make peers
/// look alive), and its own Split Brain Resolver could down them and form a cluster of one, with
/// a coordinator of its own. A node that cannot know whether it is still a member leaves: it downs
/// itself, which stops its ActorSystem (exit code 3), and its supervisor restarts it as a new member.
/// A dedicated thread measures the gaps: a paused process's threads all stop together.
/// </summary>
public sealed class PauseDetector : IDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);
    private readonly ActorSystem _system;
    private readonly TimeSpan _limit;
    private readonly Thread _thread;
    private volatile bool _stopped;

    public PauseDetector(ActorSystem system, TimeSpan limit)
    {
        _system = system;
        _limit = limit;
        _thread = new Thread(Run) { IsBackground = true, Name = "mcactors-pause-detector" };
    }

    /// <summary>Starts measuring (once; later calls do nothing).</summary>
    public void Start()
    {
        if (!_stopped && Interlocked.Exchange(ref _started, 1) == 0)
            _thread.Start();
    }

    private int _started;

    private void Run()
    {
        var last = Stopwatch.GetTimestamp();
        while (!_stopped)
        {
            Thread.Sleep(Tick); // the measuring device itself: how late this wakes up is the pause
            var now = Stopwatch.GetTimestamp();
            var gap = Stopwatch.GetElapsedTime(last, now);
            last = now;
            if (gap <= _limit || _stopped)
                continue;
            var cluster = Cluster.Get(_system);
            _system.Log.Error("this process was paused for {0:0.0} s, longer than mcactors.node.pause-limit ({1:0.0} s): the cluster may have " +
                "downed it meanwhile, so it leaves (downs itself) rather than act on a stale view", gap.TotalSeconds, _limit.TotalSeconds);
            cluster.Down(cluster.SelfAddress);
            return;
        }
    }

    public void Dispose() => _stopped = true;
}
