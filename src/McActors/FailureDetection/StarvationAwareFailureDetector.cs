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
/// the primary down with it (issue 12, chaos seed 8166465692045708220). A peer that is really gone
/// stays silent in running time too and is detected as before; only this node's own stalls are
/// forgiven. Configured in hocon/cluster.conf (akka.cluster.failure-detector.implementation-class),
/// with its ticker's settings beside the detector's own.
/// </summary>
public sealed class StarvationAwareFailureDetector : PhiAccrualFailureDetector
{
    /// <summary>The constructor Akka's FailureDetectorLoader calls with the failure-detector section.</summary>
    public StarvationAwareFailureDetector(Config config, EventStream ev)
        : this(config, SharedClock(config))
    {
    }

    /// <summary>For tests: the detector over a clock they drive.</summary>
    public StarvationAwareFailureDetector(Config config, ProcessRunningClock clock)
        : base(config.GetDouble("threshold", 0), config.GetInt("max-sample-size", 0), config.GetTimeSpan("min-std-deviation", null),
            config.GetTimeSpan("acceptable-heartbeat-pause", null), config.GetTimeSpan("heartbeat-interval", null), clock.Milliseconds)
    {
    }

    private static ProcessRunningClock SharedClock(Config config)
    {
        if (config.IsNullOrEmpty())
            throw ConfigurationException.NullOrEmptyConfig<StarvationAwareFailureDetector>();
        return ProcessRunningClock.Shared(config.GetTimeSpan("starvation-tick", null), config.GetTimeSpan("starvation-ignore-below", null));
    }
}
