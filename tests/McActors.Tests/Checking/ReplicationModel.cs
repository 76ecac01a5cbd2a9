using System.Text;
using McActors.Checkpointing;
using McActors.Protocol;

namespace McActors.Tests.Checking;

/// <summary>A coordinator decision deliberately done the old, wrong way, so that a test can check that the explorer catches it.</summary>
public enum ModelFlaw
{
    None,

    /// <summary>The joiner counts for every open checkpoint, as the old <c>AddSecondary(replica, LastClosed)</c> did (and a rebuilt pipeline forgets where it joined).</summary>
    JoinCountsForOpenCheckpoints,

    /// <summary>Commit says how many secondaries the set has now, not how many prepared the checkpoint (old OnCommitted and Rejoin).</summary>
    CommitSaysCurrentSetSize,

    /// <summary>The failover target is whoever prepared the most, even a secondary that joined after the last committed checkpoint.</summary>
    UnguardedFailoverTarget,
}

/// <summary>How much of the world the model lets happen: the exhaustive bound, or a larger one for random walks.</summary>
public sealed record ModelScope(
    int Epochs = 3,
    int MaxInFlight = 2,
    int Resyncs = 1,
    int SecondaryCrashes = 1,
    int PrimaryLosses = 1,
    int CoordinatorRecoveries = 1,
    int Deadlines = 1,
    int MinReplicas = 1,
    ModelFlaw Flaw = ModelFlaw.None);

/// <summary>
/// A model of one volume: replicas "p" (the first primary), "s" (its secondary) and "j" (outside
/// the replica set, to be resynced), and the coordinator, whose decisions are the real pure logic
/// (<see cref="CheckpointPipeline"/>, <see cref="CoordinatorState.Apply"/>,
/// <see cref="ReplicaSetPlanner.PlanFailover"/>) glued the way <see cref="EpochCoordinator"/> glues
/// them. Control messages travel on FIFO channels per sender and receiver (Akka's ordering
/// guarantee); the data plane delivers a checkpoint's marker when the primary closes it (a Prepare
/// can still outrun it); Commits are checked where they are sent (their delivery changes nothing
/// the invariants look at). The steps: the coordinator opens a checkpoint, starts a resync, or
/// handles the head of one of its inboxes; a replica handles the head of its inbox; a secondary's
/// store prepares; the primary finishes a copy; a secondary or the primary crashes; a prepare
/// deadline passes; the coordinator restarts and rebuilds its state from its journal. Ghost state
/// records what each store really holds, and every step checks DESIGN.md's invariants as far as
/// this logic can break them.
/// </summary>
public sealed class ReplicationModel : IExplorable<ReplicationModel>
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static readonly TimeSpan PrepareTimeout = TimeSpan.FromSeconds(2);
    private const string Sys = "sys";
    private const int ClusterReplicas = 3;

    private readonly ModelScope _scope;
    private Dictionary<string, Replica> _replicas = [];
    private Dictionary<string, List<object>> _channels = []; // "from>to", FIFO
    private List<ICoordinatorEvent> _journal = [];
    private CoordinatorState _state = CoordinatorState.Empty;
    private CheckpointPipeline? _pipeline;
    private Dictionary<string, long> _preparedBy = [];
    private string? _resyncing;
    private bool _primaryLost;
    private int _resyncs, _secondaryCrashes, _primaryLosses, _recoveries, _deadlines;
    // Ghost: per committed (generation, epoch), the secondaries whose store really held it when it was decided.
    private Dictionary<(long Generation, long Epoch), int> _reallyPrepared = [];
    private long _released;

    public ReplicationModel(ModelScope scope)
    {
        _scope = scope;
        foreach (var id in new[] { "p", "s", "j" })
            _replicas[id] = new Replica(id);
        var volume = new VolumeSpec(Guid.Empty, 1 << 20, 4096);
        Persist(new VolumeCreated(volume));
        StartGeneration(new RolesAssigned(1, "p", ["s"]));
    }

    private ReplicationModel(ReplicationModel other)
    {
        _scope = other._scope;
        _replicas = other._replicas.ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        _channels = other._channels.ToDictionary(kv => kv.Key, kv => new List<object>(kv.Value));
        _journal = [.. other._journal];
        _state = other._state;
        _pipeline = other._pipeline?.Clone();
        _preparedBy = new Dictionary<string, long>(other._preparedBy);
        _resyncing = other._resyncing;
        _primaryLost = other._primaryLost;
        (_resyncs, _secondaryCrashes, _primaryLosses, _recoveries, _deadlines) =
            (other._resyncs, other._secondaryCrashes, other._primaryLosses, other._recoveries, other._deadlines);
        _reallyPrepared = new Dictionary<(long, long), int>(other._reallyPrepared);
        _released = other._released;
        Violation = other.Violation;
    }

    public string? Violation { get; private set; }

    /// <summary>The generation the coordinator is at (for tests of the model itself).</summary>
    public long Generation => _state.Generation;

    public long LastCommitted => _state.LastCommitted;

    public int JoinedSecondaries => _state.Joined.Length;

    public bool PrimaryLost => _primaryLost;

    public string Key
    {
        get
        {
            var b = new StringBuilder();
            b.Append(_state.Generation).Append('|').Append(_state.Primary).Append('|').AppendJoin(',', _state.Secondaries)
                .Append('|').Append(_state.LastCommitted).Append('/').Append(_state.LastCommittedSecondaries)
                .Append('|').AppendJoin(',', _state.Joined.Select(j => $"{j.Replica}@{j.CountsFrom}"))
                .Append('|').Append(_pipeline?.ToString() ?? "-")
                .Append('|').AppendJoin(',', _preparedBy.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}:{kv.Value}"))
                .Append('|').Append(_resyncing).Append(_primaryLost ? "|lost" : "")
                .Append($"|{_resyncs}{_secondaryCrashes}{_primaryLosses}{_recoveries}{_deadlines}|{_released}|")
                .AppendJoin(',', _reallyPrepared.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key.Generation}.{kv.Key.Epoch}:{kv.Value}"));
            foreach (var replica in _replicas.Values)
                b.Append('|').Append(replica);
            foreach (var (name, messages) in _channels.Where(kv => kv.Value.Count > 0).OrderBy(kv => kv.Key, StringComparer.Ordinal))
                b.Append('|').Append(name).Append('=').AppendJoin(';', messages.Select(Describe));
            b.Append('|').Append(Violation);
            return b.ToString();
        }
    }

    public IEnumerable<(string Label, Func<ReplicationModel> Next)> Enabled()
    {
        if (Violation is not null)
            yield break;
        if (_pipeline is { CanClose: true } pipeline && pipeline.LastClosed < _scope.Epochs)
            yield return ($"coordinator closes {pipeline.LastClosed + 1}", () => Step(m => m.CloseNextEpoch()));
        if (CanStartResync())
            yield return ("coordinator starts resyncing j", () => Step(m => m.StartResync("j")));
        if (_pipeline is not null && _deadlines < _scope.Deadlines && _pipeline.InFlight > 0
            && _pipeline.IsClosedByPrimary(_pipeline.LastCommitted + 1) && _pipeline.AwaitingPrepare(_pipeline.LastCommitted + 1).Count > 0)
            yield return ($"prepare deadline of {_pipeline.LastCommitted + 1} passes", () => Step(m => m.Deadline()));
        if (_recoveries < _scope.CoordinatorRecoveries && !_primaryLost)
            yield return ("coordinator restarts and recovers from its journal", () => Step(m => m.RecoverCoordinator()));
        foreach (var (name, messages) in _channels.Where(kv => kv.Value.Count > 0).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var channel = name;
            yield return ($"{channel}: {Describe(messages[0])}", () => Step(m => m.Deliver(channel)));
        }
        foreach (var replica in _replicas.Values.Where(r => r.Alive).OrderBy(r => r.Id, StringComparer.Ordinal))
        {
            var id = replica.Id;
            if (replica.IsPrimary && replica.Copying is { } joiner)
                yield return ($"{id} finishes copying to {joiner}", () => Step(m => m.FinishCopy(id)));
            if (replica.IsPrimary && _primaryLosses < _scope.PrimaryLosses)
                yield return ($"{id} (primary) crashes", () => Step(m => m.Crash(id)));
            if (!replica.IsPrimary && replica.Generation > 0 && _secondaryCrashes < _scope.SecondaryCrashes)
                yield return ($"{id} crashes", () => Step(m => m.Crash(id)));
        }
    }

    private ReplicationModel Step(Action<ReplicationModel> action)
    {
        var next = new ReplicationModel(this);
        action(next);
        next.CheckAlways();
        return next;
    }

    private void Fail(string violation) => Violation ??= violation;

    // ---- the coordinator (EpochCoordinator's glue around the pure logic) ----

    private void Persist(ICoordinatorEvent e)
    {
        if (e is CheckpointCommitted c && c.Epoch != _state.LastCommitted + 1)
            Fail($"commit of {c.Epoch} after {_state.LastCommitted}: committed checkpoints must follow each other");
        if (e is RolesAssigned r && _journal.OfType<RolesAssigned>().Any(old => old.Generation >= r.Generation))
            Fail($"generation {r.Generation} assigned again (primary {r.Primary}): at most one primary per generation");
        _journal.Add(e);
        _state = _state.Apply(e);
    }

    /// <summary>
    /// A message on its FIFO channel; one to a secondary is handled at once (its Prepared still
    /// races everything else on the way back: only the orders that change nothing are left out).
    /// </summary>
    private void Send(string from, string to, object message)
    {
        if (from == "c" && _replicas[to] is { IsPrimary: false } secondary)
        {
            if (secondary.Alive && !(message is IFencedMessage fenced && fenced.Generation != secondary.Generation))
                SecondaryReceives(secondary, message);
            return;
        }
        Channel($"{from}>{to}").Add(message);
    }

    private List<object> Channel(string name) => _channels.TryGetValue(name, out var c) ? c : _channels[name] = [];

    private void CloseNextEpoch()
    {
        var epoch = _pipeline!.Close(T0);
        Send("c", _state.Primary!, new CloseEpoch(_state.Generation, epoch));
        foreach (var secondary in _pipeline.TakingPart(epoch).Order(StringComparer.Ordinal))
            Send("c", secondary, new Prepare(_state.Generation, epoch));
    }

    private bool CanStartResync() =>
        _pipeline is not null && _resyncing is null && _resyncs < _scope.Resyncs && _replicas["j"].Alive && !_state.IsMember("j")
        && _state.Secondaries.Length < ClusterReplicas - 1;

    /// <summary>MaybeStartResync, ResyncReady and AddSecondary in one: the joiner opens its store for a resync, the primary is asked to copy.</summary>
    private void StartResync(string joiner)
    {
        _resyncs++;
        _resyncing = joiner;
        var j = _replicas[joiner];
        j.Generation = _state.Generation;
        j.IsPrimary = false;
        j.Prepared = j.Received = 0;
        j.SyncedFrom = long.MaxValue; // nothing can be prepared until the copy completes
        j.Waiting.Clear();
        Send("c", _state.Primary!, new AddSecondary(_state.Generation, new SecondaryEndpoint(joiner, "h", 1), 4096, null));
    }

    private void CoordinatorReceives(string from, object message)
    {
        switch (message)
        {
            case IFencedMessage fenced when fenced.Generation != _state.Generation:
                return; // IsStale
            case EpochClosed closed when _pipeline is not null:
                Decide(_pipeline.OnEpochClosed(closed));
                return;
            case Prepared prepared when _pipeline is not null:
                if (prepared.Epoch > _preparedBy.GetValueOrDefault(prepared.Replica))
                    _preparedBy[prepared.Replica] = prepared.Epoch;
                Decide(_pipeline.OnPrepared(prepared));
                return;
            case ResyncCompleted completed when _pipeline is not null && _resyncing == completed.ReplicaId:
                _resyncing = null;
                if (_scope.Flaw == ModelFlaw.JoinCountsForOpenCheckpoints)
                {
                    // The old AddSecondary(replica, LastClosed): counted as prepared up to the last opened checkpoint.
                    Persist(new SecondaryAdded(_state.Generation, completed.ReplicaId, completed.FromEpoch));
                    _pipeline.AddSecondary(completed.ReplicaId, 0);
                    if (_pipeline.LastClosed > _pipeline.LastCommitted)
                        Decide(_pipeline.OnPrepared(new Prepared(_state.Generation, _pipeline.LastClosed, completed.ReplicaId)));
                    return;
                }
                var added = new SecondaryAdded(_state.Generation, completed.ReplicaId, completed.FromEpoch, _pipeline.JoinEpoch(completed.FromEpoch));
                Persist(added);
                _pipeline.AddSecondary(added.Replica, added.CountsFrom);
                return;
            case Terminated terminated:
                OnMemberGone(terminated.Replica);
                return;
        }
    }

    private void OnMemberGone(string replica)
    {
        if (_resyncing == replica)
            _resyncing = null;
        if (!_state.IsMember(replica))
            return;
        if (replica == _state.Primary)
        {
            if (!_primaryLost)
                StartFailover();
            return;
        }
        var epoch = _pipeline?.LastClosed ?? _state.LastCommitted;
        var decisions = _pipeline?.RemoveSecondary(replica) ?? [];
        Persist(new SecondaryDropped(_state.Generation, replica, epoch, "terminated"));
        Decide(decisions);
    }

    private void Decide(IReadOnlyList<PipelineDecision> decisions)
    {
        foreach (var decision in decisions)
        {
            switch (decision)
            {
                case DropSecondary drop:
                    Persist(new SecondaryDropped(_state.Generation, drop.Replica, drop.Epoch, drop.Reason));
                    break;
                case CommitCheckpoint commit:
                    OnCommit(commit);
                    break;
            }
        }
    }

    private void OnCommit(CommitCheckpoint commit)
    {
        foreach (var s in commit.PreparedBy.Where(s => !HoldsCheckpoint(s, commit.Epoch)))
            Fail($"checkpoint {commit.Epoch} committed as prepared by {s}, whose store does not hold it " +
                 $"(prepared {_replicas[s].Prepared}, in sync from {Describe(_replicas[s].SyncedFrom)})");
        // Any replica but the primary whose store holds it (lenient: one not counted may hold it too).
        _reallyPrepared[(_state.Generation, commit.Epoch)] = _replicas.Keys.Count(id => id != _state.Primary && HoldsCheckpoint(id, commit.Epoch));
        Persist(new CheckpointCommitted(_state.Generation, commit.Epoch, 0, 0, commit.PreparedBy.Count));
        var message = _scope.Flaw == ModelFlaw.CommitSaysCurrentSetSize
            ? new Commit(_state.Generation, commit.Epoch, _state.Secondaries.Length)
            : new Commit(_state.Generation, commit.Epoch, _state.LastCommittedSecondaries);
        SendCommit(_state.Primary!, message);
        foreach (var secondary in _pipeline!.Secondaries.Order(StringComparer.Ordinal))
            SendCommit(secondary, message);
    }

    /// <summary>
    /// Every Commit the coordinator sends: it may not claim more secondaries than really hold the
    /// checkpoint, and the primary's ReleaseOutput (min-replicas; no image fsync once a secondary
    /// holds it) is checked here rather than at delivery, which would only multiply the orders
    /// without changing what it sees (what a store holds of a committed checkpoint stays).
    /// </summary>
    private void SendCommit(string to, Commit commit)
    {
        var committedIn = _reallyPrepared.Keys.Where(k => k.Epoch == commit.Epoch).Select(k => k.Generation).DefaultIfEmpty(-1).Max();
        var really = committedIn < 0 ? 0 : _reallyPrepared[(committedIn, commit.Epoch)];
        if (commit.Secondaries > really)
            Fail($"Commit({commit.Epoch}) to {to} says {commit.Secondaries} secondaries; {really} prepared it");
        if (to != _state.Primary)
            return;
        if (commit.Secondaries >= _scope.MinReplicas && really < _scope.MinReplicas)
            Fail($"{to} would release output of {commit.Epoch} on min-replicas {_scope.MinReplicas}; {really} secondaries prepared it");
        if (commit.Secondaries > 0 && really == 0)
            Fail($"{to} would skip its image fsync for {commit.Epoch}: no secondary prepared it (durable on no disk)");
        if (commit.Secondaries >= _scope.MinReplicas)
            _released = Math.Max(_released, commit.Epoch);
    }

    private void Deadline()
    {
        _deadlines++;
        Decide(_pipeline!.OnTick(T0 + PrepareTimeout));
    }

    /// <summary>A restart or singleton move: what was sent to the coordinator is lost, its state is rebuilt from the journal.</summary>
    private void RecoverCoordinator()
    {
        _recoveries++;
        var rebuilt = _journal.Aggregate(CoordinatorState.Empty, (s, e) => s.Apply(e));
        if (rebuilt.LastCommitted != _state.LastCommitted || rebuilt.Generation != _state.Generation || rebuilt.Primary != _state.Primary
            || !rebuilt.Secondaries.SequenceEqual(_state.Secondaries) || rebuilt.LastCommittedSecondaries != _state.LastCommittedSecondaries)
            Fail($"the state rebuilt from the journal (generation {rebuilt.Generation}, last committed {rebuilt.LastCommitted}) " +
                 $"is not the live one (generation {_state.Generation}, last committed {_state.LastCommitted})");
        _state = rebuilt;
        foreach (var inbox in _channels.Keys.Where(k => k.EndsWith(">c", StringComparison.Ordinal)).ToList())
            _channels[inbox].Clear();
        _resyncing = null;
        _pipeline = null;
        // Every live replica registers again and says what it prepared.
        _preparedBy = _replicas.Values.Where(r => r.Alive).ToDictionary(r => r.Id, r => r.Prepared);
        foreach (var member in Members().Where(m => _replicas[m].Alive))
        {
            var commit = _scope.Flaw == ModelFlaw.CommitSaysCurrentSetSize && _state.LastCommitted > 0
                ? new Commit(_state.Generation, _state.LastCommitted, _state.Secondaries.Length)
                : _state.LastCommit();
            if (commit is not null)
                SendCommit(member, commit); // Rejoin
        }
        if (_replicas[_state.Primary!].Alive)
            StartPipeline(); // the primary registers with its role: Running again
        else
            StartFailover(); // it does not come back in time
    }

    private void StartPipeline() =>
        _pipeline = new CheckpointPipeline(_state.Generation, _state.LastCommitted, _state.Secondaries, _scope.MaxInFlight, PrepareTimeout,
            _scope.Flaw == ModelFlaw.JoinCountsForOpenCheckpoints ? null : _state.Joined);

    /// <summary>StartFailover, then the new generation's alignment and promotion in one step (their messages are fenced by generation).</summary>
    private void StartFailover()
    {
        var lastCommitted = _state.LastCommitted;
        // Registered: alive, or dead with its Terminated not handled yet (the coordinator still holds its ref).
        var registered = _replicas.Values.Where(r => r.Alive || Channel($"{Sys}>c").Contains(new Terminated(r.Id)))
            .ToDictionary(r => r.Id, r => new ReplicaCandidate(r.Id, "h", 1, RegistrationOrder(r.Id)));
        Func<string, long> countsFrom = _scope.Flaw == ModelFlaw.UnguardedFailoverTarget ? _ => 0 : _state.CountsFrom;
        var roles = ReplicaSetPlanner.PlanFailover(_state.Secondaries, registered, _preparedBy, _state.Generation, _ => null, lastCommitted, countsFrom);
        _pipeline = null;
        _resyncing = null;
        if (roles is null)
        {
            _primaryLost = true;
            return;
        }
        if (!HoldsCheckpoint(roles.Primary, lastCommitted))
            Fail($"failover target {roles.Primary} cannot roll back to the last committed checkpoint {lastCommitted} " +
                 $"(prepared {_replicas[roles.Primary].Prepared}, in sync from {Describe(_replicas[roles.Primary].SyncedFrom)})");
        Persist(roles);
        foreach (var (name, messages) in _channels.Where(kv => !kv.Key.StartsWith(Sys, StringComparison.Ordinal)))
            messages.Clear(); // everything in flight is of the old generation
        foreach (var key in _preparedBy.Keys.ToList())
            _preparedBy[key] = Math.Min(_preparedBy[key], lastCommitted);
        StartGeneration(roles);
    }

    /// <summary>The replicas take their roles of a new generation: the secondaries roll back to the last committed checkpoint (or fail), then the primary.</summary>
    private void StartGeneration(RolesAssigned roles)
    {
        if (roles.Generation == 1)
            Persist(roles);
        var lastCommitted = _state.LastCommitted;
        foreach (var replica in _replicas.Values.Where(r => r.IsPrimary))
            replica.IsPrimary = false;
        foreach (var id in roles.Secondaries)
        {
            var s = _replicas[id];
            if (!HoldsCheckpoint(id, lastCommitted))
            {
                // Its store refuses the rollback: it fails, and is dropped (it may be resynced later).
                Persist(new SecondaryDropped(_state.Generation, id, lastCommitted, "cannot roll back"));
                s.Generation = 0;
                continue;
            }
            s.Generation = roles.Generation;
            s.Prepared = s.Received = lastCommitted;
            s.Waiting.Clear();
        }
        var primary = _replicas[roles.Primary];
        primary.Generation = roles.Generation;
        primary.IsPrimary = true;
        primary.Closed = lastCommitted;
        primary.Copying = null;
        primary.StreamTo = [.. _state.Secondaries];
        StartPipeline();
    }

    private static long RegistrationOrder(string id) => id switch { "p" => 1, "s" => 2, _ => 3 };

    private IEnumerable<string> Members() => [_state.Primary!, .. _state.Secondaries];

    // ---- the replicas ----

    private void Deliver(string channel)
    {
        var messages = _channels[channel];
        var message = messages[0];
        messages.RemoveAt(0);
        var separator = channel.IndexOf('>');
        var (from, to) = (channel[..separator], channel[(separator + 1)..]);
        if (to == "c")
        {
            CoordinatorReceives(from, message);
            return;
        }
        var replica = _replicas[to];
        if (!replica.Alive)
            return;
        if (message is IFencedMessage fenced && fenced.Generation != replica.Generation)
            return; // a replica refuses another generation's messages
        if (replica.IsPrimary)
            PrimaryReceives(replica, message);
        else
            SecondaryReceives(replica, message);
    }

    private void PrimaryReceives(Replica p, object message)
    {
        switch (message)
        {
            case CloseEpoch close when close.Epoch == p.Closed + 1:
                p.Closed = close.Epoch;
                // The data plane delivers the marker at once: a Prepare can still outrun it, since the
                // coordinator sends Prepare before the primary even handled CloseEpoch.
                foreach (var s in p.StreamTo.Where(s => _replicas[s].Alive).Order(StringComparer.Ordinal))
                {
                    _replicas[s].Received = Math.Max(_replicas[s].Received, close.Epoch);
                    StorePrepare(s);
                }
                Send(p.Id, "c", new EpochClosed(p.Generation, close.Epoch, 1, 4096));
                break;
            case CloseEpoch close when close.Epoch <= p.Closed:
                Send(p.Id, "c", new EpochClosed(p.Generation, close.Epoch, 1, 4096)); // a re-driven close is answered again
                break;
            case CloseEpoch close:
                Fail($"CloseEpoch({close.Epoch}) reached a primary that closed only up to {p.Closed}");
                break;
            case AddSecondary add:
                p.StreamTo.Add(add.Endpoint.ReplicaId);
                p.Copying = add.Endpoint.ReplicaId;
                break;
        }
    }

    private void SecondaryReceives(Replica s, object message)
    {
        switch (message)
        {
            case Prepare prepare when prepare.Epoch <= s.Prepared:
                Send(s.Id, "c", new Prepared(s.Generation, prepare.Epoch, s.Id)); // SecondaryCheckpoints.Request: already durable
                break;
            case Prepare prepare:
                s.Waiting.Add(prepare.Epoch);
                StorePrepare(s.Id);
                break;
        }
    }

    /// <summary>
    /// The store prepares the newest checkpoint both asked for and received, as soon as it can (a
    /// separate step for it would only multiply the orders: its Prepared still races everything).
    /// </summary>
    private void StorePrepare(string id)
    {
        var s = _replicas[id];
        if (s.NextPrepare() is not { } epoch)
            return;
        if (epoch < s.SyncedFrom)
        {
            // The store refuses (ResyncIncompleteException): the secondary fails.
            s.Alive = false;
            Channel($"{Sys}>c").Add(new Terminated(id));
            return;
        }
        s.Prepared = epoch;
        foreach (var answered in s.Waiting.Where(w => w <= epoch).ToList())
        {
            s.Waiting.Remove(answered);
            Send(id, "c", new Prepared(s.Generation, answered, id));
        }
    }

    /// <summary>Every chunk is out and the joiner acknowledged "in sync from" the primary's current epoch: tell the coordinator.</summary>
    private void FinishCopy(string primaryId)
    {
        var p = _replicas[primaryId];
        var joiner = _replicas[p.Copying!];
        p.Copying = null;
        joiner.SyncedFrom = p.Closed + 1;
        Send(primaryId, "c", new ResyncCompleted(p.Generation, joiner.Id, p.Closed + 1));
    }

    private void Crash(string id)
    {
        var replica = _replicas[id];
        if (replica.IsPrimary)
            _primaryLosses++;
        else
            _secondaryCrashes++;
        replica.Alive = false;
        foreach (var (name, messages) in _channels.Where(kv => kv.Key.EndsWith($">{id}", StringComparison.Ordinal)))
            messages.Clear();
        foreach (var p in _replicas.Values.Where(r => r.IsPrimary))
        {
            p.StreamTo.Remove(id);
            if (p.Copying == id)
                p.Copying = null;
        }
        Channel($"{Sys}>c").Add(new Terminated(id));
    }

    // ---- invariants ----

    /// <summary>Ghost: the store of <paramref name="replica"/> can roll back to checkpoint <paramref name="epoch"/> (it prepared it, and its image was the primary's by then).</summary>
    private bool HoldsCheckpoint(string replica, long epoch) =>
        _replicas[replica] is var r && r.Prepared >= epoch && r.SyncedFrom <= epoch;

    private void CheckAlways()
    {
        foreach (var generation in _replicas.Values.Where(r => r.Alive && r.IsPrimary).GroupBy(r => r.Generation).Where(g => g.Count() > 1))
            Fail($"{string.Join(" and ", generation.Select(r => r.Id))} are both primary of generation {generation.Key}");
        if (_released > _state.LastCommitted)
            Fail($"output of {_released} was released, the last committed checkpoint is {_state.LastCommitted}: committed epochs were lost");
    }

    /// <summary>A message, short (traces and state keys).</summary>
    private static string Describe(object message) => message switch
    {
        CloseEpoch m => $"CloseEpoch(g{m.Generation}, {m.Epoch})",
        EpochClosed m => $"EpochClosed(g{m.Generation}, {m.Epoch})",
        Prepare m => $"Prepare(g{m.Generation}, {m.Epoch})",
        Prepared m => $"Prepared(g{m.Generation}, {m.Epoch}, {m.Replica})",
        AddSecondary m => $"AddSecondary(g{m.Generation}, {m.Endpoint.ReplicaId})",
        ResyncCompleted m => $"ResyncCompleted(g{m.Generation}, {m.ReplicaId}, from {m.FromEpoch})",
        _ => message.ToString()!,
    };

    private static string Describe(long syncedFrom) => syncedFrom == long.MaxValue ? "never (resync running)" : syncedFrom.ToString();

    private sealed record Terminated(string Replica)
    {
        public override string ToString() => $"Terminated({Replica})";
    }

    private sealed class Replica(string id)
    {
        public string Id { get; } = id;
        public bool Alive { get; set; } = true;
        public long Generation { get; set; }
        public bool IsPrimary { get; set; }
        public long Closed { get; set; }
        public HashSet<string> StreamTo { get; set; } = [];
        public string? Copying { get; set; }
        public long Prepared { get; set; }
        public long Received { get; set; }
        public long SyncedFrom { get; set; }
        public SortedSet<long> Waiting { get; private set; } = [];

        /// <summary>SecondaryCheckpoints.NextPrepare: the newest checkpoint both requested and received.</summary>
        public long? NextPrepare()
        {
            if (IsPrimary || Generation == 0)
                return null;
            var target = Waiting.Where(e => e <= Received).DefaultIfEmpty(0).Max();
            return target > Prepared ? target : null;
        }

        public Replica Clone() => new(Id)
        {
            Alive = Alive, Generation = Generation, IsPrimary = IsPrimary, Closed = Closed, StreamTo = [.. StreamTo], Copying = Copying,
            Prepared = Prepared, Received = Received, SyncedFrom = SyncedFrom, Waiting = [.. Waiting],
        };

        public override string ToString() =>
            $"{Id}{(Alive ? "" : "†")}g{Generation}{(IsPrimary ? $"P{Closed}>{string.Join("", StreamTo.Order(StringComparer.Ordinal))}{(Copying is null ? "" : "c" + Copying)}" : "")}" +
            $" p{Prepared}r{Received}f{(SyncedFrom == long.MaxValue ? "∞" : SyncedFrom)}w{string.Join(",", Waiting)}";
    }
}
