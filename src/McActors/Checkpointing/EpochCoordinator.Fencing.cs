using Akka.Actor;
using Akka.Event;
using Akka.Cluster;
using Akka.Persistence;
using McActors.Protocol;

namespace McActors.Checkpointing;

// EpochCoordinator: what every state handles (status, cluster events for the failover timeline,
// snapshots), the fencing of the coordinator itself, and of stale-generation messages.
public sealed partial class EpochCoordinator
{
    protected override void PreStart()
    {
        base.PreStart();
        // Failure detection and downing times for the failover timeline (and a moved coordinator's
        // check whether the primary's node is still there).
        if (IsCluster)
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.ReachableMember), typeof(ClusterEvent.MemberDowned),
                typeof(ClusterEvent.MemberExited), typeof(ClusterEvent.MemberRemoved));
    }

    protected override void PostStop()
    {
        if (IsCluster)
            Cluster.Get(Context.System).Unsubscribe(Self);
        base.PostStop();
    }

    private bool IsCluster => ((ExtendedActorSystem)Context.System).Provider is ClusterActorRefProvider;

    private void Common()
    {
        Command<GetCoordinatorStatus>(_ => Sender.Tell(Status()));
        Command<ClusterEvent.UnreachableMember>(e => _failover.Unreachable(e.Member.Address, DateTime.UtcNow));
        Command<ClusterEvent.ReachableMember>(e => _failover.Reachable(e.Member.Address));
        Command<ClusterEvent.MemberDowned>(e =>
        {
            _failover.Downed(e.Member.Address, DateTime.UtcNow);
            if (IsSelf(e.Member))
            {
                Fence("its node was downed");
                return;
            }
            // A downed node never comes back, and the generation fences it even while it still runs:
            // fail over now rather than when the node is removed (a second or two later).
            if (_state.HasRoles && _state.PrimaryAddress == e.Member.Address.ToString() && !_stop.Stopped && _pipeline is not null)
                StartFailover("its node was downed");
        });
        Command<ClusterEvent.MemberExited>(e =>
        {
            if (IsSelf(e.Member))
                Fence("its node is leaving the cluster");
        });
        Command<ClusterEvent.MemberRemoved>(e =>
        {
            if (IsSelf(e.Member))
            {
                Fence("its node was removed from the cluster");
                return;
            }
            _failover.Removed(e.Member.Address, DateTime.UtcNow);
        });
        Command<ResetCommitLatency>(_ => _commits.ClearPercentiles());
        Command<CoordinatorSingleton.HandOver>(_ => Context.Stop(Self));
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("snapshot at {0} failed: {1}", f.Metadata.SequenceNr, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("deleting old snapshots failed: {0}", f.Cause.Message));
    }

    private CoordinatorStatus Status() => new(
        _state.Generation,
        _state.Primary,
        _state.Secondaries,
        _state.LastCommitted,
        _pipeline?.InFlight ?? 0,
        _state.CheckpointsCommitted,
        _state.WritesCommitted,
        _state.BytesCommitted,
        _commits.Percentile(50),
        _commits.Percentile(99),
        Degraded: _state.HasRoles && _state.Secondaries.Length == 0)
    {
        Failovers = _state.Failovers,
        LastFailover = _failover.Last,
        Resyncing = _resyncs.Progress,
        JoinedFrom = _state.Joined.ToDictionary(j => j.Replica, j => j.CountsFrom),
    };

    private bool IsSelf(Member member) => IsCluster && member.Address.Equals(Cluster.Get(Context.System).SelfAddress);

    /// <summary>
    /// True once this node is down or on its way out, as far as the cluster's view says: another
    /// coordinator may be (or soon be) running from the same journal, so this one decides nothing.
    /// </summary>
    private bool SelfGone()
    {
        if (!IsCluster)
            return false;
        var cluster = Cluster.Get(Context.System);
        // One snapshot, self looked up by unique address: Cluster.SelfMember would make up a Removed
        // member for a node the view has not seen yet.
        var self = cluster.State.Members.FirstOrDefault(m => m.UniqueAddress.Equals(cluster.SelfUniqueAddress));
        return IsGone(cluster.IsTerminated, self?.Status);
    }

    /// <summary>
    /// Whether a node is gone by its cluster view. A node absent from its own view has not been seen
    /// in any gossip yet: on a cluster just formed, the singleton (this coordinator) can recover that
    /// early, and fencing then would leave the volume without a coordinator for good. A node never
    /// leaves its own view while its cluster runs (gossip without it is ignored; its removal shuts
    /// the cluster down, which is flagged terminated before the view empties).
    /// </summary>
    internal static bool IsGone(bool clusterTerminated, MemberStatus? selfInView) =>
        clusterTerminated || selfInView is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed;

    /// <summary>
    /// This coordinator's node was downed or is leaving: from now on it persists nothing and answers
    /// nothing but status (the node stops it soon, or the singleton hands over). A persist already
    /// under way when this is learnt still completes: the journal's own fencing (see
    /// <see cref="CoordinatorTookOver"/>) makes sure that it lands before the next coordinator's
    /// recovery, or is refused.
    /// </summary>
    private void Fence(string reason)
    {
        _log.Warning("coordinator of generation {0} fenced: {1}; it persists no more decisions and waits to be stopped", _state.Generation, reason);
        Timers.CancelAll();
        Become(Fenced);
    }

    private void Fenced()
    {
        Command<GetCoordinatorStatus>(_ => Sender.Tell(Status()));
        Command<CoordinatorSingleton.HandOver>(_ => Context.Stop(Self));
        CommandAny(m => _log.Debug("fenced coordinator: {0} dropped", m.GetType().Name));
    }

    /// <summary>Last in every state: fenced messages not expected there get StaleGeneration if stale, else are dropped.</summary>
    private void IgnoreOtherFenced() =>
        Command<IFencedMessage>(m =>
        {
            if (!IsStale(m))
                _log.Debug("{0} ignored in this state", m.GetType().Name);
        });

    private bool IsStale(IFencedMessage m)
    {
        if (m.Generation == _state.Generation)
            return false;
        if (m.Generation < _state.Generation)
            Sender.Tell(new StaleGeneration(_state.Generation, m.Generation, m.GetType().Name));
        else
            _log.Warning("{0} of generation {1} from {2} ignored: this coordinator is at generation {3}", m.GetType().Name, m.Generation, Sender, _state.Generation);
        return true;
    }
}
