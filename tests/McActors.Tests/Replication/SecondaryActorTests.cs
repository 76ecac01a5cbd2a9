using System.Net;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Configuration;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Protocol;
using McActors.Replication;
using McActors.Storage.Rollback;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>
/// The secondary end to end on one machine: a real data-plane stream from a
/// <see cref="DataPlaneSender"/> playing the primary (the synthetic workload's writes, markers and
/// guest states), a probe playing the coordinator, the store on disk in a temp directory.
/// </summary>
public sealed class SecondaryActorTests : TestKit, IDisposable
{
    private const long VolumeSize = 8 << 20;
    private const int BlockSize = 4096;
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"mcactors-secondary-{Guid.NewGuid():N}");
    private readonly VolumeSpec _volume = new(Guid.NewGuid(), VolumeSize, BlockSize);
    private readonly TestProbe _coordinator;

    public SecondaryActorTests(ITestOutputHelper output) : base("akka.loglevel = DEBUG", output)
    {
        Directory.CreateDirectory(_dir);
        _coordinator = CreateTestProbe("coordinator");
    }

    private static McActorsSettings Settings => new(
        BlockSize, WriteAheadBatchBytes: 256 << 10, EpochInterval: TimeSpan.FromSeconds(1), MaxInFlight: 4,
        PrepareTimeout: TimeSpan.FromSeconds(5), MinReplicas: 1, DataPlane: new DataPlaneOptions());

    private string StoreDirectory => Path.Combine(_dir, "store");

    private string StatePath(long epoch) => Path.Combine(_dir, "states", $"epoch-{epoch}.gstate");

    private IActorRef StartSecondary(long generation = 1, long lastCommitted = 0)
    {
        var secondary = Sys.ActorOf(SecondaryActor.Props("s1", _dir, new IPEndPoint(IPAddress.Loopback, 0), _coordinator.Ref, Settings,
            onReplicaDispatcher: false), "secondary");
        secondary.Tell(new AssignSecondary(generation, _volume, "p1", lastCommitted), _coordinator.Ref);
        var assumed = _coordinator.ExpectMsg<RoleAssumed>();
        Assert.Equal(new RoleAssumed(generation, "s1", ReplicaRole.Secondary), assumed);
        return secondary;
    }

    private SecondaryStatus Status(IActorRef secondary)
    {
        secondary.Tell(GetSecondaryStatus.Instance);
        return ExpectMsg<SecondaryStatus>();
    }

    private IActorRef Store(IActorRef secondary) =>
        Sys.ActorSelection(secondary.Path / "store").ResolveOne(TimeSpan.FromSeconds(3)).Result;

    private async Task<TestPrimary> Connect(IActorRef secondary, long generation = 1, long seed = 7)
    {
        var port = Status(secondary).DataPlanePort;
        Assert.True(port > 0);
        var sender = await DataPlaneSender.ConnectAsync("127.0.0.1", port, new DataPlaneVolume(_volume.VolumeId, BlockSize), generation, firstSequence: 1);
        return new TestPrimary(sender, new SyntheticWorkload(seed, VolumeSize, BlockSize));
    }

    /// <summary>
    /// A secondary with checkpoint 1 prepared, its primary, the last sequence number of epoch 1, and the
    /// primary's workload as it stood at checkpoint 1: the writes of epoch 2 are lost with a store restart, to be replayed from it.
    /// </summary>
    private async Task<(IActorRef Secondary, TestPrimary Primary, long ResumeAfter, SyntheticWorkload Replay)> PreparedAtCheckpoint1()
    {
        var secondary = StartSecondary();
        var primary = await Connect(secondary);
        await primary.WriteAsync(1, 10);
        await primary.CloseAsync(1);
        Prepare(secondary, 1);
        ExpectPrepared(1);
        return (secondary, primary, primary.NextSequence - 1, SyntheticWorkload.Restore(primary.Workload.Capture(1)));
    }

    /// <summary>A primary of generation 1 that reconnects after a store restart: the secondary must tell it to resume after <paramref name="resumeAfter"/>, and it replays from there.</summary>
    private async Task<TestPrimary> Reconnect(IActorRef secondary, long resumeAfter, SyntheticWorkload replay)
    {
        var sender = await DataPlaneSender.ConnectAsync("127.0.0.1", Status(secondary).DataPlanePort,
            new DataPlaneVolume(_volume.VolumeId, BlockSize), 1, resumeAfter + 1);
        Assert.Equal(resumeAfter, sender.PeerAppliedSequence);
        return new TestPrimary(sender, replay, resumeAfter + 1);
    }

    /// <summary>Stops the secondary and checks that its store, recovered from disk, holds the guest state <paramref name="state"/>.</summary>
    private void StopAndVerify(IActorRef secondary, byte[] state)
    {
        StopAndWait(secondary);
        using var recovered = RollbackStore.Recover(StoreDirectory);
        var verification = GuestVerifier.Verify(GuestState.Parse(state), recovered);
        Assert.True(verification.Ok, verification.ToString());
    }

    private void Prepare(IActorRef secondary, long epoch, long generation = 1) =>
        secondary.Tell(new Prepare(generation, epoch), _coordinator.Ref);

    private void ExpectPrepared(long epoch, long generation = 1) =>
        Assert.Equal(new Prepared(generation, epoch, "s1"), _coordinator.ExpectMsg<Prepared>(TimeSpan.FromSeconds(5)));

    /// <summary>Commits and waits until the secondary has it (Commit has no answer: watch the status).</summary>
    private void CommitAndWait(IActorRef secondary, long epoch)
    {
        secondary.Tell(new Commit(1, epoch, 1), _coordinator.Ref);
        AwaitAssert(() => Assert.Equal(epoch, Status(secondary).LastCommitted), TimeSpan.FromSeconds(5));
    }

    private void StopAndWait(IActorRef actor)
    {
        Watch(actor);
        Sys.Stop(actor);
        ExpectTerminated(actor);
    }

    [Fact]
    public async Task Assignment_opens_the_store_and_listens_on_the_reported_port()
    {
        var secondary = StartSecondary();
        var status = Status(secondary);
        Assert.Equal("Active", status.State);
        Assert.Equal(1, status.Generation);
        Assert.True(status.DataPlanePort > 0);
        Assert.True(File.Exists(Path.Combine(StoreDirectory, "volume.json")));

        await using var primary = await Connect(secondary);
        AwaitAssert(() => Assert.Equal(1, Status(secondary).ConnectedGeneration));
        Assert.Equal(0, primary.Sender.PeerAppliedSequence);
    }

    [Fact]
    public async Task A_checkpoint_is_prepared_once_its_writes_marker_and_state_are_durable()
    {
        var secondary = StartSecondary();
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 40);
        var state1 = await primary.CloseAsync(1);

        Prepare(secondary, 1);
        ExpectPrepared(1);
        Assert.Equal(state1, File.ReadAllBytes(StatePath(1)));
        var status = Status(secondary);
        Assert.Equal(1, status.LastPrepared);
        Assert.Equal(40, status.WritesApplied);
        Assert.Equal(primary.Workload.BytesWritten, status.BytesApplied);

        Store(secondary).Tell(GetStoreStatus.Instance);
        var store = ExpectMsg<StoreStatus>();
        Assert.Equal(1, store.Prepared);
        Assert.Equal(0, store.Committed);
        Assert.Equal(primary.Workload.BytesWritten, store.Counters.GuestBytesWritten);
    }

    [Fact]
    public async Task A_checkpoint_whose_state_cannot_be_made_durable_is_not_prepared_and_the_replica_fails()
    {
        var secondary = StartSecondary();
        Watch(secondary);
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 10);
        await primary.CloseAsync(1);
        await primary.SyncAsync();
        // The state file is listed but cannot be opened (a dangling link): its fsync, which runs
        // beside the store's, fails.
        File.Delete(StatePath(1));
        File.CreateSymbolicLink(StatePath(1), Path.Combine(_dir, "gone"));

        Prepare(secondary, 1);
        var failed = _coordinator.ExpectMsg<ReplicaFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("guest state of checkpoint 1 cannot be made durable", failed.Reason);
        Assert.Contains("resync required", failed.Reason);
        ExpectTerminated(secondary);
        using var store = RollbackStore.Recover(StoreDirectory);
        Assert.Equal(0, store.PreparedEpoch);
    }

    [Fact]
    public async Task A_prepare_that_outruns_the_stream_is_answered_when_marker_and_state_arrive()
    {
        var secondary = StartSecondary();
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 20);
        await primary.SyncAsync();

        Prepare(secondary, 1);
        _coordinator.ExpectNoMsg(Quiet); // writes applied, but no marker yet
        await primary.MarkerAsync(1);
        await primary.SyncAsync();
        _coordinator.ExpectNoMsg(Quiet); // marker, but no state yet
        await primary.StateAsync(1);
        ExpectPrepared(1);
        _coordinator.ExpectNoMsg(Quiet); // exactly one answer
    }

    [Fact]
    public async Task A_repeated_prepare_is_answered_again()
    {
        var secondary = StartSecondary();
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 10);
        await primary.CloseAsync(1);
        Prepare(secondary, 1);
        ExpectPrepared(1);
        Prepare(secondary, 1);
        ExpectPrepared(1);
        Assert.Equal(1, Status(secondary).LastPrepared);
    }

    [Fact]
    public async Task Commit_keeps_the_committed_state_drops_older_ones_and_a_late_commit_changes_nothing()
    {
        var secondary = StartSecondary();
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 10);
        await primary.CloseAsync(1);
        await primary.WriteAsync(2, 10);
        await primary.CloseAsync(2);
        Prepare(secondary, 2);
        ExpectPrepared(2);

        CommitAndWait(secondary, 1);
        Assert.True(File.Exists(StatePath(1)));
        CommitAndWait(secondary, 2);
        AwaitAssert(() => Assert.False(File.Exists(StatePath(1))));
        Assert.True(File.Exists(StatePath(2)));

        EventFilter.Debug(contains: "ignoring Commit(1)").ExpectOne(() => secondary.Tell(new Commit(1, 1, 1), _coordinator.Ref)); // late
        EventFilter.Debug(contains: "ignoring Commit(2)").ExpectOne(() => secondary.Tell(new Commit(1, 2, 1), _coordinator.Ref)); // repeated
        _coordinator.ExpectNoMsg(Quiet);
        var status = Status(secondary);
        Assert.Equal(2, status.LastCommitted);
        Store(secondary).Tell(GetStoreStatus.Instance);
        Assert.Equal(2, ExpectMsg<StoreStatus>().Committed);
    }

    [Fact]
    public async Task Messages_of_a_stale_generation_are_refused_and_change_nothing()
    {
        var secondary = StartSecondary(generation: 3);
        await using var primary = await Connect(secondary, generation: 3);
        await primary.WriteAsync(1, 10);
        await primary.CloseAsync(1);
        await primary.SyncAsync();
        var before = Status(secondary);

        secondary.Tell(new Prepare(2, 1), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(3, 2, nameof(Prepare)), _coordinator.ExpectMsg<StaleGeneration>());
        secondary.Tell(new Commit(1, 1, 1), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(3, 1, nameof(Commit)), _coordinator.ExpectMsg<StaleGeneration>());
        secondary.Tell(new AssignSecondary(2, _volume, "p0", 0), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(3, 2, nameof(AssignSecondary)), _coordinator.ExpectMsg<StaleGeneration>());
        _coordinator.ExpectNoMsg(Quiet);
        Assert.Equal(before, Status(secondary));
        Store(secondary).Tell(GetStoreStatus.Instance);
        var store = ExpectMsg<StoreStatus>();
        Assert.Equal((0L, 0L), (store.Committed, store.Prepared));

        // A primary of the stale generation cannot even connect.
        var refused = await Assert.ThrowsAsync<DataPlaneRefusedException>(() =>
            DataPlaneSender.ConnectAsync("127.0.0.1", before.DataPlanePort, new DataPlaneVolume(_volume.VolumeId, BlockSize), 2, 1));
        Assert.Equal(DataPlaneErrorCode.StaleGeneration, refused.Code);
    }

    [Fact]
    public async Task Rolled_back_to_a_committed_checkpoint_the_image_is_exactly_that_checkpoints_disk()
    {
        var secondary = StartSecondary();
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 30);
        await primary.CloseAsync(1);
        await primary.WriteAsync(2, 30);
        var state2 = await primary.CloseAsync(2);
        Prepare(secondary, 2);
        ExpectPrepared(2);
        CommitAndWait(secondary, 2);
        await primary.WriteAsync(3, 30); // applied, never prepared: rollback undoes it
        await primary.SyncAsync();

        var store = Store(secondary);
        store.Tell(new RollbackStoreTo(2));
        var rolledBack = ExpectMsg<StoreRolledBack>().Result;
        Assert.Equal(2, rolledBack.Checkpoint);
        Assert.Equal(1, rolledBack.LogsApplied);
        AwaitAssert(() => Assert.Equal(2, Status(secondary).LastPrepared));

        StopAndWait(secondary);
        using var recovered = RollbackStore.Recover(StoreDirectory);
        Assert.Equal(2, recovered.PreparedEpoch);
        var verification = GuestVerifier.Verify(GuestState.Parse(state2), recovered);
        Assert.True(verification.Ok, verification.ToString());
        var stateOnDisk = GuestState.Parse(File.ReadAllBytes(StatePath(2)));
        Assert.Equal(GuestState.Parse(state2).Digest, stateOnDisk.Digest);
    }

    [Fact]
    public async Task A_store_that_cannot_vouch_for_its_image_after_a_restart_reports_the_replica_failed()
    {
        var secondary = StartSecondary();
        Watch(secondary);
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 10);
        await primary.CloseAsync(1);
        Prepare(secondary, 1);
        ExpectPrepared(1);
        await primary.WriteAsync(2, 10); // epoch 2 has a rollback log now
        await primary.SyncAsync();

        var log = Path.Combine(StoreDirectory, RollbackStore.LogDirectoryName, $"epoch-{2:D20}.rblog");
        Assert.True(File.Exists(log));
        // A disk error restarts the store; while it is closed, the log's header is damaged.
        Store(secondary).Tell(new CrashStoreForTest(new IOException("simulated EIO"), () =>
        {
            using var f = new FileStream(log, FileMode.Open, FileAccess.Write);
            f.Write(new byte[64]);
        }));

        var failed = _coordinator.ExpectMsg<ReplicaFailed>(TimeSpan.FromSeconds(5));
        Assert.Equal(1, failed.Generation);
        Assert.Equal("s1", failed.ReplicaId);
        Assert.Contains("resync required", failed.Reason);
        Assert.Contains("RollbackLogHeaderCorruptException", failed.Reason);
        ExpectTerminated(secondary);
    }

    [Fact]
    public async Task A_store_restarted_after_a_disk_error_resumes_at_its_prepared_checkpoint_and_rewinds_the_stream()
    {
        var (secondary, primary, resumeAfter, replay) = await PreparedAtCheckpoint1();
        await primary.WriteAsync(2, 10);
        await primary.SyncAsync();

        Store(secondary).Tell(new CrashStoreForTest(new IOException("simulated EIO")));
        AwaitAssert(() =>
        {
            Store(secondary).Tell(GetStoreStatus.Instance);
            var s = ExpectMsg<StoreStatus>();
            Assert.Equal(3, s.Incarnation); // 2 began with the crash (the gate emptied), 3 is the reopened store
            Assert.Equal([1L], s.LoggedEpochs); // epoch 2, never prepared, was rolled back
        }, TimeSpan.FromSeconds(5));

        // The next frame finds the store rewound: the connection closes, a reconnect learns where to resume.
        await Assert.ThrowsAnyAsync<DataPlaneException>(async () =>
        {
            await primary.WriteAsync(2, 1);
            await primary.SyncAsync();
        });
        await primary.DisposeAsync();
        await using var resumed = await Reconnect(secondary, resumeAfter, replay);
        await resumed.WriteAsync(2, 12);
        var state2 = await resumed.CloseAsync(2);
        Prepare(secondary, 2);
        ExpectPrepared(2);
        CommitAndWait(secondary, 2);

        StopAndVerify(secondary, state2);
    }

    [Fact]
    public async Task A_checkpoint_whose_writes_went_to_the_store_before_its_restart_is_not_prepared_on_the_recovered_store()
    {
        var (secondary, primary, resumeAfter, replay) = await PreparedAtCheckpoint1();
        await primary.WriteAsync(2, 10);
        await primary.MarkerAsync(2);
        Prepare(secondary, 2); // waits for state 2
        Assert.Equal(1, Status(secondary).LastPrepared);
        var incarnation = StoreIncarnation(secondary);

        // State 2 passes every check against the store that holds epoch 2's writes, then its file
        // write stalls (a FIFO, and a blob larger than its buffer) while the store restarts.
        var stalled = StalledFile.At(StatePath(2));
        var writerIn = stalled.WaitForWriterAsync();
        var state = new OpaqueGuestState("test", 2, new byte[1 << 20]).Serialize();
        var sending = primary.Sender.SendGuestStateAsync(2, primary.NextSequence++, state).AsTask();
        await writerIn.WaitAsync(TimeSpan.FromSeconds(10));
        stalled.ReplaceWith(state);
        Store(secondary).Tell(new CrashStoreForTest(new IOException("simulated EIO")));
        // Recovery rolled epoch 2's writes back (never prepared); the secondary heard StoreReady before what follows.
        AwaitAssert(() =>
        {
            Store(secondary).Tell(GetStoreStatus.Instance);
            var reopened = ExpectMsg<StoreStatus>();
            Assert.True(reopened.Incarnation > incarnation);
            Assert.Equal([1L], reopened.LoggedEpochs);
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(state, stalled.Release());
        await sending;

        // The applier now reports checkpoint 2, received in the store that is gone: no prepare of 2
        // on the recovered image, which lacks epoch 2.
        _coordinator.ExpectNoMsg(Quiet);
        Assert.Equal(1, Status(secondary).LastPrepared);

        // The reconnecting primary is told to resend epoch 2, and then checkpoint 2 is prepared for real.
        await primary.DisposeAsync();
        await using var resumed = await Reconnect(secondary, resumeAfter, replay);
        await resumed.WriteAsync(2, 10);
        var state2 = await resumed.CloseAsync(2);
        ExpectPrepared(2);
        CommitAndWait(secondary, 2);

        StopAndVerify(secondary, state2);
    }

    [Fact]
    public async Task A_checkpoint_received_in_a_reopened_store_before_its_StoreReady_is_prepared_once_that_arrives()
    {
        var (secondary, primary, _, _) = await PreparedAtCheckpoint1();
        await primary.DisposeAsync();
        Prepare(secondary, 2); // waits for checkpoint 2
        var incarnation = StoreIncarnation(secondary);
        // The store restart publishes incarnation +2 (+1 began with the crash, emptying the gate) before its
        // StoreReady is sent: the applier can adopt it and deliver checkpoint 2 (here an empty epoch, its
        // state on disk) first. That notice is in the mailbox before the store even crashes.
        GuestStateFiles.Of(_dir).Write(2, new OpaqueGuestState("test", 2, new byte[64]).Serialize());
        secondary.Tell(new StreamCheckpointReceived(1, 2, 0, 0, incarnation + 2));
        Store(secondary).Tell(new CrashStoreForTest(new IOException("simulated EIO")));

        // Nothing resends it: only holding it until StoreReady gets checkpoint 2 prepared (else the prepare times out).
        ExpectPrepared(2);
        Assert.Equal(incarnation + 2, StoreIncarnation(secondary));
        Assert.Equal(2, Status(secondary).LastPrepared);

        // One of the incarnation gone stays ignored: checkpoint 3 is not prepared on its word.
        Prepare(secondary, 3);
        GuestStateFiles.Of(_dir).Write(3, new OpaqueGuestState("test", 3, new byte[64]).Serialize());
        secondary.Tell(new StreamCheckpointReceived(1, 3, 0, 0, incarnation));
        _coordinator.ExpectNoMsg(Quiet);
        Assert.Equal(2, Status(secondary).LastPrepared);
    }

    private long StoreIncarnation(IActorRef secondary)
    {
        Store(secondary).Tell(GetStoreStatus.Instance);
        return ExpectMsg<StoreStatus>().Incarnation;
    }

    [Fact]
    public async Task A_marker_that_disagrees_with_the_applied_writes_breaks_the_stream_and_fails_the_replica()
    {
        var secondary = StartSecondary();
        Watch(secondary);
        await using var primary = await Connect(secondary);
        await primary.WriteAsync(1, 5);
        await primary.Sender.SendMarkerAsync(1, primary.NextSequence++, writesInEpoch: 6, bytesInEpoch: 1);

        var failed = _coordinator.ExpectMsg<ReplicaFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("marker of epoch 1 counts 6 writes", failed.Reason);
        ExpectTerminated(secondary);
    }

    [Fact]
    public async Task A_restarted_secondary_recovers_its_store_and_resumes_from_the_committed_checkpoint()
    {
        var secondary = StartSecondary();
        await using (var primary = await Connect(secondary))
        {
            await primary.WriteAsync(1, 10);
            await primary.CloseAsync(1);
            await primary.WriteAsync(2, 10);
            await primary.CloseAsync(2);
            Prepare(secondary, 2);
            ExpectPrepared(2);
            CommitAndWait(secondary, 1);
        }
        StopAndWait(secondary);

        // The cluster committed 1 (not 2): the store rolls back from 2 and resumes there.
        var again = StartSecondary(generation: 2, lastCommitted: 1);
        var status = Status(again);
        Assert.Equal((1L, 1L), (status.LastPrepared, status.LastCommitted));
        Store(again).Tell(GetStoreStatus.Instance);
        var store = ExpectMsg<StoreStatus>();
        Assert.Equal((1L, 1L), (store.Committed, store.Prepared));
        Assert.Empty(store.LoggedEpochs);
    }

    [Fact]
    public async Task A_new_generation_rolls_the_store_back_to_the_committed_checkpoint_and_follows_the_new_primary()
    {
        var secondary = StartSecondary();
        var old = await Connect(secondary);
        await old.WriteAsync(1, 20);
        var state1 = await old.CloseAsync(1);
        await old.WriteAsync(2, 20);
        await old.CloseAsync(2);
        Prepare(secondary, 2);
        ExpectPrepared(2);
        CommitAndWait(secondary, 1);

        // Failover: the cluster committed 1; the new primary resumes from it in generation 2.
        secondary.Tell(new AssignSecondary(2, _volume, "p2", 1), _coordinator.Ref);
        Assert.Equal(new RoleAssumed(2, "s1", ReplicaRole.Secondary), _coordinator.ExpectMsg<RoleAssumed>());
        var status = Status(secondary);
        Assert.Equal((2L, 1L, 1L), (status.Generation, status.LastPrepared, status.LastCommitted));
        await Assert.ThrowsAnyAsync<DataPlaneException>(() => old.Sender.Completion.WaitAsync(TimeSpan.FromSeconds(5))); // fenced off
        await old.DisposeAsync();

        var sender = await DataPlaneSender.ConnectAsync("127.0.0.1", status.DataPlanePort, new DataPlaneVolume(_volume.VolumeId, BlockSize), 2, 1);
        Assert.Equal(0, sender.PeerAppliedSequence);
        await using var primary = new TestPrimary(sender, SyntheticWorkload.Restore(state1));
        await primary.WriteAsync(2, 25); // another epoch 2 than the old primary's
        var state2 = await primary.CloseAsync(2);
        Prepare(secondary, 2, generation: 2);
        ExpectPrepared(2, generation: 2);
        secondary.Tell(new Prepare(1, 2), _coordinator.Ref);
        Assert.Equal(new StaleGeneration(2, 1, nameof(Prepare)), _coordinator.ExpectMsg<StaleGeneration>());

        StopAndVerify(secondary, state2);
    }

    [Fact]
    public async Task Pipelined_checkpoints_are_prepared_in_order_while_later_epochs_stream_in()
    {
        var secondary = StartSecondary();
        await using var primary = await Connect(secondary);
        var states = new Dictionary<long, byte[]>();
        for (long epoch = 1; epoch <= 5; epoch++)
        {
            await primary.WriteAsync(epoch, 40);
            states[epoch] = await primary.CloseAsync(epoch);
            Prepare(secondary, epoch); // not waited for: epoch + 1 streams while the store prepares
            if (epoch > 2)
                secondary.Tell(new Commit(1, epoch - 2, 1), _coordinator.Ref);
        }
        await primary.WriteAsync(6, 40); // an open epoch, never prepared
        var prepared = Enumerable.Range(0, 5).Select(_ => _coordinator.ExpectMsg<Prepared>(TimeSpan.FromSeconds(5)).Epoch).ToList();
        Assert.Equal([1L, 2L, 3L, 4L, 5L], prepared);
        CommitAndWait(secondary, 5);
        AwaitAssert(() => Assert.Equal([5L], Directory.GetFiles(Path.Combine(_dir, "states")).Select(f => long.Parse(Path.GetFileNameWithoutExtension(f)["epoch-".Length..])).ToList()));

        StopAndWait(secondary); // the store comes back at checkpoint 5: epoch 6 is undone on open
        using var recovered = RollbackStore.Recover(StoreDirectory);
        Assert.Equal([6L], recovered.LoggedEpochs);
        recovered.RollbackTo(5);
        var verification = GuestVerifier.Verify(GuestState.Parse(states[5]), recovered);
        Assert.True(verification.Ok, verification.ToString());
    }

    public new void Dispose()
    {
        base.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>Plays the primary: streams the synthetic workload's writes, counts them per epoch, closes epochs.</summary>
    private sealed class TestPrimary(DataPlaneSender sender, SyntheticWorkload workload, long firstSequence = 1) : IAsyncDisposable
    {
        private long _writes;
        private long _bytes;

        public DataPlaneSender Sender { get; } = sender;
        public SyntheticWorkload Workload { get; } = workload;
        public long NextSequence { get; set; } = firstSequence;

        public async Task WriteAsync(long epoch, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var (write, data) = Workload.NextWrite();
                await Sender.SendWriteAsync(epoch, NextSequence++, write.Offset, data);
                _writes++;
                _bytes += data.Length;
            }
        }

        public async Task MarkerAsync(long epoch)
        {
            await Sender.SendMarkerAsync(epoch, NextSequence++, _writes, _bytes);
            _writes = _bytes = 0;
        }

        public async Task<byte[]> StateAsync(long epoch)
        {
            var blob = Workload.Capture(epoch);
            await Sender.SendGuestStateAsync(epoch, NextSequence++, blob);
            return blob;
        }

        public async Task<byte[]> CloseAsync(long epoch)
        {
            await MarkerAsync(epoch);
            return await StateAsync(epoch);
        }

        public Task SyncAsync() => Sender.WaitForAcknowledgementAsync(NextSequence - 1);

        public ValueTask DisposeAsync() => Sender.DisposeAsync();
    }
}
