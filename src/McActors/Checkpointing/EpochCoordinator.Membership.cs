using Akka.Actor;
using Akka.Event;
using Akka.Cluster;
using McActors.Protocol;

namespace McActors.Checkpointing;

// EpochCoordinator: registration and role assignment, re-protection (resync) and failover, as
// ReplicaRegistry, ResyncTracker, ReplicaSetPlanner and FailoverTimeline decide them.
public sealed partial class EpochCoordinator
{
    // ---- registration and membership ----

    /// <summary>
    /// Records, watches and acknowledges a registration. True when a member of the replica set
    /// registered from a ref new to this coordinator (after a restart or move of the coordinator, or
    /// of the replica); a primary that restarted is failed over here.
    /// </summary>
    private bool Register(RegisterReplica r)
    {
        var registration = _members.Record(r, UpNumber(r.Replica), _state, _primaryRunning);
        if (registration.Replaced is { } old)
        {
            Context.Unwatch(old);
            _log.Info("{0} registered again from {1} (was {2})", r.ReplicaId, r.Replica, old);
        }
        Context.Watch(r.Replica);
        // Not persisted: every replica says its NBD address again within a registration interval.
        r.Replica.Tell(new ReplicaRegistered(r.ReplicaId, _state.Generation, _state.Primary, _members.NbdOf(_state.Primary)));
        if (registration.Verdict == RegistrationVerdict.PrimaryRestarted)
            // Its image holds writes that no checkpoint covers, so it cannot go on from the last
            // committed one. Fail over to a secondary; it rejoins later (resync).
            StartFailover("it restarted (registered again without a role)");
        return registration.Verdict == RegistrationVerdict.MemberRejoined;
    }

    /// <summary>
    /// A member came back (new ref): it may have missed its assignment and the last decision, so
    /// repeat both. Both are idempotent: a live replica answers a same-generation assignment with
    /// RoleAssumed and ignores a Commit it already has; a restarted one takes its role back.
    /// </summary>
    private void Rejoin(string replica)
    {
        SendAssignment(replica);
        // With the count recorded at its commit, not today's replica set.
        if (_state.LastCommit() is { } commit)
            _members.RefOf(replica)!.Tell(commit);
    }

    private string? Forget(IActorRef terminated) => _members.Forget(terminated, _state.HasRoles);

    private void OnMemberGone(string? replica, string reason, Action then)
    {
        if (replica is null || !_state.IsMember(replica))
            return;
        if (replica == _state.Primary)
        {
            StartFailover(reason);
            return;
        }
        _awaitingRoleAssumed.Remove(replica);
        AssignPrimaryIfSecondariesListen(); // the primary may have waited for this secondary
        var epoch = _pipeline?.LastClosed ?? _state.LastCommitted;
        var decisions = _pipeline?.RemoveSecondary(replica) ?? [];
        PersistDrop(new SecondaryDropped(_state.Generation, replica, epoch, reason));
        Decide(decisions);
        then();
    }

    /// <summary>The node address of a registered replica (its own system's address when local).</summary>
    private string? AddressOf(string replica)
    {
        if (_members.RefOf(replica) is not { } r)
            return null;
        var address = r.Path.Address.HasLocalScope && IsCluster ? Cluster.Get(Context.System).SelfAddress : r.Path.Address;
        return address.ToString();
    }

    /// <summary>The member's rank by cluster age (0 = oldest) when its node is a cluster member, for tie-breaking.</summary>
    private int? UpNumber(IActorRef replica)
    {
        if (!IsCluster)
            return null;
        var cluster = Cluster.Get(Context.System);
        var address = replica.Path.Address.HasLocalScope ? cluster.SelfAddress : replica.Path.Address;
        // Member.UpNumber is internal; the rank among Up members by age says the same.
        var byAge = cluster.State.Members.Where(m => m.Status == MemberStatus.Up).OrderBy(m => m, Member.AgeOrdering).ToList();
        var rank = byAge.FindIndex(m => m.Address.Equals(address));
        return rank >= 0 ? rank : null;
    }

    /// <summary>True when the recorded primary's node is known and is not a live member of the cluster.</summary>
    private bool PrimaryNodeGone()
    {
        if (!IsCluster || _state.PrimaryAddress is null)
            return false;
        var address = Address.Parse(_state.PrimaryAddress);
        var member = Cluster.Get(Context.System).State.Members.FirstOrDefault(m => m.Address.Equals(address));
        return member is null || member.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed
               || Cluster.Get(Context.System).State.Unreachable.Contains(member);
    }

    private IEnumerable<string> Members() => _state.Primary is null ? [] : [_state.Primary, .. _state.Secondaries];

    private IActorRef? Primary() => _state.Primary is not null ? _members.RefOf(_state.Primary) : null;

    // ---- role assignment ----

    private void StartRunningIfAllAssumed()
    {
        if (_awaitingRoleAssumed.Count == 0)
            Become(Running);
    }

    /// <summary>
    /// Secondaries first; the primary only once every secondary has assumed its role, because the
    /// primary connects to their data planes at once and a secondary listens only after assuming.
    /// </summary>
    private void SendAssignments()
    {
        foreach (var replica in _state.Secondaries.Where(_awaitingRoleAssumed.Contains))
            SendAssignment(replica);
        AssignPrimaryIfSecondariesListen();
    }

    private void AssignPrimaryIfSecondariesListen()
    {
        if (_state.Primary is not null && _awaitingRoleAssumed.Contains(_state.Primary)
            && !_state.Secondaries.Any(_awaitingRoleAssumed.Contains))
            SendAssignment(_state.Primary);
    }

    private void SendAssignment(string replica)
    {
        if (_members.RefOf(replica) is not { } target || _state.Volume is null || _state.Primary is null)
            return;
        object assignment = replica == _state.Primary
            ? new AssignPrimary(_state.Generation, _state.Volume, ReplicaSetPlanner.Endpoints(_state.Secondaries, _members.Candidates), _state.LastCommitted)
            // The membership it holds (a secondary resynced in and then restarted is the member of that attempt).
            : new AssignSecondary(_state.Generation, _state.Volume, _state.Primary, _state.LastCommitted, ResyncAttempt: _state.MembershipOf(replica) ?? 0);
        target.Tell(assignment);
    }

    /// <summary>
    /// A secondary of a new generation that has not assumed its role in time (it hangs, or died
    /// without being noticed yet) is left out, so that the primary can start without it.
    /// </summary>
    private void LeaveOutSlowSecondaries()
    {
        if (DateTime.UtcNow - _assigningSince < _settings.AssignTimeout)
            return;
        foreach (var slow in _state.Secondaries.Where(_awaitingRoleAssumed.Contains).ToList())
        {
            _awaitingRoleAssumed.Remove(slow);
            PersistDrop(new SecondaryDropped(_state.Generation, slow, _state.LastCommitted,
                $"did not assume its role within {_settings.AssignTimeout.TotalSeconds:0.#} s"));
        }
        // After the drops are applied, so that the primary is not told to stream to them.
        DeferAsync(nameof(LeaveOutSlowSecondaries), _ => AssignPrimaryIfSecondariesListen());
    }

    // ---- re-protection ----

    /// <summary>
    /// A replica outside the replica set registered: if the set has room, resync it from the
    /// primary (it may be new, a dropped secondary, or an old primary back with its old image).
    /// </summary>
    private void MaybeStartResync(RegisterReplica r)
    {
        if (_resyncs.IsUnderWay(r.ReplicaId) || _state.Volume is null || _state.Primary is null)
            return;
        if (!_resyncs.HasRoom(_state, _settings.Replicas))
        {
            _log.Debug("{0} registered; the replica set of generation {1} is full", r.ReplicaId, _state.Generation);
            return;
        }
        var attempt = _resyncs.Start(r.ReplicaId, _state.Incarnation, _state.Volume.SizeBytes, DateTime.UtcNow);
        _log.Info("{0} joins generation {1}: resyncing it from primary {2}{3}", r.ReplicaId, _state.Generation, _state.Primary,
            r.VolumeId == _state.Volume.VolumeId ? " (it holds an image of this volume: only what differs is copied)" : "");
        r.Replica.Tell(new AssignSecondary(_state.Generation, _state.Volume, _state.Primary, _state.LastCommitted, Resync: true, ResyncAttempt: attempt));
    }

    /// <summary>True when <paramref name="attempt"/> is the resync of <paramref name="replica"/> under way; else logs what is ignored.</summary>
    private bool IsCurrentResync(string replica, long attempt, string messageType)
    {
        var check = _resyncs.Check(replica, attempt);
        if (check == ResyncCheck.OtherAttempt)
            _log.Warning("{0} of resync attempt {1} of {2} ignored: attempt {3} is the one under way (the other was forgotten)",
                messageType, attempt, replica, _resyncs.AttemptOf(replica));
        return check == ResyncCheck.Current;
    }

    /// <summary>Running: the joiner and the primary report a resync's steps.</summary>
    private void ReprotectionCommands()
    {
        Command<ResyncReady>(r =>
        {
            if (IsStale(r) || !IsCurrentResync(r.ReplicaId, r.Attempt, nameof(ResyncReady)) || !_members.Candidates.TryGetValue(r.ReplicaId, out var joiner))
                return;
            _log.Info("{0} is ready to resync ({1}); the primary copies what differs", r.ReplicaId,
                r.Digest is null ? "empty image: everything written is copied" : $"{r.Digest.Length / 16} chunks of {r.ChunkBytes} B hashed");
            Primary()?.Tell(new AddSecondary(_state.Generation, new SecondaryEndpoint(r.ReplicaId, joiner.Host, joiner.Port), r.ChunkBytes, r.Digest, r.Attempt));
        });
        Command<ResyncStatus>(r =>
        {
            if (IsStale(r) || !IsCurrentResync(r.Progress.Replica, r.Attempt, nameof(ResyncStatus)))
                return;
            _resyncs.Heard(r.Progress, DateTime.UtcNow);
            _events.Publish(new Events.ResyncProgress(r.Generation, r.Progress.Replica, r.Progress.ScannedBytes, r.Progress.TotalBytes, r.Progress.CopiedBytes));
        });
        Command<ResyncCompleted>(r =>
        {
            if (IsStale(r) || !IsCurrentResync(r.ReplicaId, r.Attempt, nameof(ResyncCompleted)) || !_resyncs.Remove(r.ReplicaId))
                return;
            _events.Publish(new Events.ResyncCompleted(r.Generation, r.ReplicaId, r.FromEpoch));
            // It takes part in the checkpoints opened from now on: those already open (the primary may
            // not even have closed the one it is in sync from) were never asked of it.
            Persist(new SecondaryAdded(_state.Generation, r.ReplicaId, r.FromEpoch, _pipeline!.JoinEpoch(r.FromEpoch), r.Attempt), e =>
            {
                ApplyEvent(e);
                _pipeline!.AddSecondary(e.Replica, e.CountsFrom);
                _events.Publish(new Events.ReplicaAdded(e.Generation, e.Replica, e.CountsFrom));
                _log.Info("{0} is in sync from checkpoint {1} and protects the volume again from checkpoint {2}: secondaries [{3}]",
                    e.Replica, e.Epoch, e.CountsFrom, string.Join(", ", _state.Secondaries));
            });
        });
        Command<ResyncFailed>(r =>
        {
            if (!IsStale(r) && IsCurrentResync(r.ReplicaId, r.Attempt, nameof(ResyncFailed)) && _resyncs.Remove(r.ReplicaId))
                _log.Warning("resync of {0} failed: {1}; it is tried again when it registers", r.ReplicaId, r.Reason);
        });
    }

    // ---- failover ----

    /// <summary>
    /// The primary is lost: persist the next generation with the secondary that prepared the most
    /// as primary, and assign the roles (target: the last committed checkpoint). The old primary
    /// is fenced by the generation: nothing it sends is accepted, no data plane admits it.
    /// </summary>
    private void StartFailover(string reason)
    {
        if (SelfGone())
        {
            // The primary's node and this one may have been downed in one decision (a minority side):
            // whichever event came first, a coordinator on its way out must not pick the next primary.
            Fence($"its node is down or leaving (primary {_state.Primary} lost: {reason})");
            return;
        }
        var old = _state.Primary!;
        var roles = ReplicaSetPlanner.PlanFailover(_state, _members, AddressOf, DateTime.UtcNow);
        if (roles is null)
        {
            _log.Error("primary {0} of generation {1} lost ({2}) and no secondary is alive to take over: the volume is unavailable " +
                "until a secondary of this generation, or the primary itself, returns with a store that holds checkpoint {3} (the last committed)",
                old, _state.Generation, reason, _state.LastCommitted);
            Become(PrimaryLost);
            return;
        }
        var left = _state.Secondaries.Except(roles.Secondaries).Where(s => s != roles.Primary).ToArray();
        _log.Warning($"primary {old} of generation {_state.Generation} lost ({reason}): failing over to {roles.Primary} as primary of " +
            $"generation {roles.Generation} at checkpoint {_state.LastCommitted}; secondaries [{string.Join(", ", roles.Secondaries)}]" +
            (left.Length > 0 ? $"; left out (not registered, or joined after checkpoint {_state.LastCommitted}): {string.Join(", ", left)}" : ""));
        var seen = _failover.SeenLost(_state.PrimaryAddress);
        Timers.CancelAll();
        Persist(roles, e =>
        {
            ApplyEvent(e);
            _failover.Started(e.Generation, old, e.Primary, _state.LastCommitted, seen, DateTime.UtcNow);
            ResetCheckpointing();
            _events.Publish(new Events.FailoverStarted(e.Generation, old, e.Primary, _state.LastCommitted, reason));
            Become(AssigningRoles);
        });
    }

    /// <summary>
    /// The new primary's rollback report, for the failover timeline. Handled while running too: it
    /// comes through the proxy while RoleAssumed comes straight back, and may arrive after it.
    /// </summary>
    private void OnPromoted(Promoted p)
    {
        if (IsStale(p) || p.ReplicaId != _state.Primary || _failover.Promoted(p) is null)
            return;
        _log.Info($"failover to generation {p.Generation}: {p.ReplicaId} rolled back {p.RolledBackEpochs} epochs " +
            $"({p.RolledBackBlocks} blocks, {p.RolledBackBytes / 1048576.0:0.0} MiB) to checkpoint {p.Checkpoint} in {p.RollbackMs:0.0} ms");
    }

    /// <summary>A new generation starts its checkpoints afresh from the last committed one.</summary>
    private void ResetCheckpointing()
    {
        _pipeline = null;
        _resyncs.Clear(); // the copies were from the old primary; joiners register again
        _primaryRunning = false;
        _commits.NewGeneration();
        _openEpoch = null;
        _members.RollBackPrepared(_state.LastCommitted);
    }

    private void OnPrimaryResumed()
    {
        _primaryRunning = true;
        if (_failover.Resumed(_state.Generation, DateTime.UtcNow) is not { } f)
            return;
        _events.Publish(new Events.FailoverCompleted(f.Generation, f));
        _log.Warning("failover to generation {0} done: {1} resumed the guest after checkpoint {2} ({3:0} ms after the old primary was detected lost)",
            f.Generation, f.ToPrimary, f.TargetCheckpoint, FailoverTimeline.OutageMs(f));
    }
}
