using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using McActors.FailureDetection;

namespace McActors.Hosting;

/// <summary>
/// Stops a node whose whole process was paused (SIGSTOP, a stalled VM, a swap storm) for longer
/// than the cluster needs to down it. The others may have downed and removed it meanwhile without
/// it knowing: on waking, its view is stale (heartbeats buffered during the pause even make peers
/// look alive), and its own Split Brain Resolver could down them and form a cluster of one, with
/// a coordinator of its own. A node that cannot know whether it is still a member leaves: it downs
/// itself, which stops its ActorSystem (exit code 3), and its supervisor restarts it as a new member.
/// A dedicated thread measures the gaps: a paused process's threads all stop together. It also
/// leaves when the thread pool, not the whole process, lost more than the limit of running time
/// in twice that long (<see cref="RunningTimeDeficit"/>): the failure detector runs on that time.
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
        // A node whose thread pool keeps stalling (not one pause, but most of the time) has a
        // failure detector whose clock crawls (StarvationAwareFailureDetector): it would take that
        // long to see a partition and leave the minority side. Past the limit, it leaves now.
        var clock = RunningClockOf(_system);
        var deficit = new RunningTimeDeficit(2 * _limit);
        var origin = last;
        while (!_stopped)
        {
            Thread.Sleep(Tick); // the measuring device itself: how late this wakes up is the pause
            var now = Stopwatch.GetTimestamp();
            var gap = Stopwatch.GetElapsedTime(last, now);
            last = now;
            if (_stopped)
                return;
            if (gap > _limit)
            {
                Leave($"this process was paused for {gap.TotalSeconds:0.0} s, longer than mcactors.node.pause-limit ({_limit.TotalSeconds:0.0} s)");
                return;
            }
            if (clock is not null && deficit.Add((long)Stopwatch.GetElapsedTime(origin, now).TotalMilliseconds, clock.Milliseconds()) is var lost && lost > _limit)
            {
                Leave($"this node's thread pool could not run for {lost.TotalSeconds:0.0} s of the last {2 * _limit.TotalSeconds:0.0} s, " +
                    $"more than mcactors.node.pause-limit ({_limit.TotalSeconds:0.0} s); its failure detector, on that running time, lags as much");
                return;
            }
        }
    }

    private void Leave(string why)
    {
        var cluster = Cluster.Get(_system);
        _system.Log.Error("{0}: the cluster may have downed it meanwhile, so it leaves (downs itself) rather than act on a stale view", why);
        cluster.Down(cluster.SelfAddress);
    }

    /// <summary>The running clock of the cluster's failure detector, if it is McActors' (else null: nothing to watch).</summary>
    private static ProcessRunningClock? RunningClockOf(ActorSystem system)
    {
        var section = system.Settings.Config.GetConfig("akka.cluster.failure-detector");
        if (section is null || !(section.GetString("implementation-class", "") ?? "").Contains(nameof(StarvationAwareFailureDetector), StringComparison.Ordinal))
            return null;
        return StarvationAwareFailureDetector.SharedClock(section);
    }

    public void Dispose() => _stopped = true;
}
