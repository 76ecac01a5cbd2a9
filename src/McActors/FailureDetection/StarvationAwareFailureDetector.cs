using Akka.Configuration;
using Akka.Event;
using Akka.Remote;

namespace McActors.FailureDetection;

/// <summary>
/// Akka's phi-accrual failure detector, measuring time on the <see cref="ProcessRunningClock"/>:
/// a node that was itself not running (paused, or its thread pool starved) does not count that time as its
/// peers' silence. With the plain detector such a node wakes up, finds no heartbeat for the length
/// of its own pause and marks every peer unreachable; the Split Brain Resolver then sees a node
/// that is both observer and observed unreachable, calls the lot "indirectly connected" and downs
/// them together: one stalled node (the secondary under a long fsync, an overloaded observer) took
/// the primary down with it (issue 12, chaos seed 8166465692045708220). Only stalls long enough to
/// silence a peer are forgiven (<see cref="ProcessRunningClock.IgnoreBelow"/>); a peer that is
/// really gone stays silent in running time too. While this node stalls over and over, detection
/// slows with it; <c>PauseDetector</c> makes such a node leave once it has lost more than
/// <c>mcactors.node.pause-limit</c> of running time. Akka's "heartbeat interval is growing too
/// large" warning is not logged by this detector (the base class logs it only with an EventStream,
/// which its clock-taking constructor does not accept). Selected in hocon/cluster.conf; its clock's
/// settings are in reference.conf under akka.cluster.failure-detector.
/// </summary>
public sealed class StarvationAwareFailureDetector : PhiAccrualFailureDetector
{
    /// <summary>The constructor Akka's FailureDetectorLoader calls with the failure-detector section.</summary>
    public StarvationAwareFailureDetector(Config config, EventStream ev)
        : this(config, SharedClock(config) ?? throw ConfigurationException.NullOrEmptyConfig<StarvationAwareFailureDetector>())
    {
    }

    /// <summary>For tests: the detector over a clock they drive.</summary>
    public StarvationAwareFailureDetector(Config config, ProcessRunningClock clock)
        : base(config.GetDouble("threshold", 0), config.GetInt("max-sample-size", 0), config.GetTimeSpan("min-std-deviation", null),
            config.GetTimeSpan("acceptable-heartbeat-pause", null), config.GetTimeSpan("heartbeat-interval", null), clock.Milliseconds)
    {
    }

    /// <summary>
    /// The process's running clock with the settings of this failure-detector section (null for an
    /// empty section); the PauseDetector watches the same clock.
    /// </summary>
    public static ProcessRunningClock? SharedClock(Config? config)
    {
        if (config.IsNullOrEmpty())
            return null;
        var tick = config!.GetTimeSpan("starvation-tick", TimeSpan.Zero);
        var ignoreBelow = config.GetTimeSpan("starvation-ignore-below", TimeSpan.MinValue);
        if (tick <= TimeSpan.Zero || ignoreBelow < TimeSpan.Zero)
            throw new ConfigurationException("akka.cluster.failure-detector.starvation-tick (> 0) and starvation-ignore-below (>= 0) must be set " +
                $"for {nameof(StarvationAwareFailureDetector)} (McActors' reference.conf has them); got {tick} and {ignoreBelow}");
        return ProcessRunningClock.Shared(tick, ignoreBelow);
    }
}
