using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Cluster;

namespace McActors.Node.LocalCluster;

/// <summary>What the observer saw of one node, UTC wall clock; null: not seen (yet).</summary>
public sealed record MemberTimes(DateTime? UnreachableAt, DateTime? DownedAt, DateTime? RemovedAt, DateTime? UpAt = null);

/// <summary>
/// The observer's own record of membership events per node (host:port), so that detection and
/// downing can be timed from outside the cluster, independently of the coordinator's report.
/// The first event of each kind per address is kept (a restarted node gets a new incarnation
/// at the same host:port; <see cref="Forget"/> clears the old one's times).
/// </summary>
public sealed class MembershipLog
{
    private readonly ConcurrentDictionary<string, MemberTimes> _times = new();

    public MemberTimes Of(string host, int port) => _times.GetValueOrDefault(Key(host, port)) ?? new MemberTimes(null, null, null);

    public void Forget(string host, int port) => _times.TryRemove(Key(host, port), out _);

    internal void Record(Address address, Func<MemberTimes, MemberTimes> change) =>
        _times.AddOrUpdate(Key(address.Host ?? "", address.Port ?? 0), _ => change(new MemberTimes(null, null, null)), (_, t) => change(t));

    private static string Key(string host, int port) => $"{host}:{port}";

    /// <summary>Subscribes to the cluster's membership events and records them in <paramref name="log"/>.</summary>
    internal sealed class Watcher : ReceiveActor
    {
        public Watcher(MembershipLog log)
        {
            Receive<ClusterEvent.MemberUp>(e => log.Record(e.Member.Address, t => t with { UpAt = t.UpAt ?? DateTime.UtcNow }));
            Receive<ClusterEvent.UnreachableMember>(e => log.Record(e.Member.Address, t => t with { UnreachableAt = t.UnreachableAt ?? DateTime.UtcNow }));
            Receive<ClusterEvent.MemberDowned>(e => log.Record(e.Member.Address, t => t with { DownedAt = t.DownedAt ?? DateTime.UtcNow }));
            Receive<ClusterEvent.MemberRemoved>(e => log.Record(e.Member.Address, t => t with
            {
                // A removal of a node that was never seen downed (it left) still ends its membership.
                DownedAt = t.DownedAt ?? (e.PreviousStatus == MemberStatus.Down ? DateTime.UtcNow : null),
                RemovedAt = t.RemovedAt ?? DateTime.UtcNow,
            }));
            Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        }

        protected override void PreStart() =>
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
                typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.MemberDowned), typeof(ClusterEvent.MemberRemoved));

        protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

        public static Props Props(MembershipLog log) => Akka.Actor.Props.Create(() => new Watcher(log));
    }
}
