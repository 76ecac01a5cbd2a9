using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.DataPlane;
using McActors.Guests;
using McActors.Replication;
using McActors.Storage.Rollback;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Tests.Replication;

/// <summary>
/// The stream applier without a network: frames handed to it as the listener would, a real store
/// behind the gate, a probe as the secondary actor.
/// </summary>
public sealed class SecondaryStreamApplierTests : TestKit, IDisposable
{
    private const long VolumeSize = 4 << 20;
    private const int BlockSize = 4096;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"mcactors-applier-{Guid.NewGuid():N}");
    private readonly StoreGate _gate = new();
    private readonly RollbackStore _store;
    private readonly TestProbe _secondary;
    private readonly StreamApplier _applier;
    private readonly SyntheticWorkload _workload = new(5, VolumeSize, BlockSize);
    private long _sequence;
    private long _writes;
    private long _bytes;

    public SecondaryStreamApplierTests(ITestOutputHelper output) : base(output: output)
    {
        _store = RollbackStore.Create(Path.Combine(_dir, "store"), new VolumeDescriptor(Guid.NewGuid(), VolumeSize, BlockSize));
        _gate.Publish(_store);
        _secondary = CreateTestProbe();
        _applier = new StreamApplier(_gate, _secondary.Ref, GuestStateFiles.Of(_dir), generation: 1);
    }

    private static HandshakeFrame Hello(long generation, long firstSequence) => new(1, Guid.Empty, generation, BlockSize, firstSequence);

    private async Task Write(long epoch, long? sequence = null, long generation = 1)
    {
        var (write, data) = _workload.NextWrite();
        await _applier.OnWriteAsync(new WriteFrame(generation, epoch, sequence ?? ++_sequence, write.Offset, data.Length), data, default);
        _writes++;
        _bytes += data.Length;
    }

    private async Task Marker(long epoch)
    {
        await _applier.OnMarkerAsync(new EpochMarkerFrame(1, epoch, ++_sequence, _writes, _bytes), default);
        _writes = _bytes = 0;
    }

    private async Task<byte[]> State(long epoch)
    {
        var blob = _workload.Capture(epoch);
        await _applier.OnGuestStateAsync(new GuestStateFrame(1, epoch, ++_sequence, blob.Length), blob, default);
        return blob;
    }

    [Fact]
    public async Task A_checkpoint_is_reported_once_both_its_marker_and_its_state_arrived_in_either_order()
    {
        await Write(1);
        await Write(1);
        var writes = _writes;
        var bytes = _bytes;
        await State(1);
        _secondary.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        await Marker(1);
        Assert.Equal(new StreamCheckpointReceived(1, 1, writes, bytes, Incarnation: 1), _secondary.ExpectMsg<StreamCheckpointReceived>());
        Assert.Equal(4, _applier.LastAppliedSequence);
        Assert.Equal(2, _applier.WritesApplied);
        Assert.True(File.Exists(Path.Combine(_dir, "states", "epoch-1.gstate")));
    }

    [Fact]
    public async Task The_last_applied_sequence_is_told_to_a_reconnecting_primary_and_resent_frames_are_skipped()
    {
        await Write(1);
        await Write(1);
        Assert.Equal(2, await _applier.OnConnectedAsync(Hello(1, 1), default));
        var bytes = _store.Counters.GuestBytesWritten;
        var (w, data) = new SyntheticWorkload(5, VolumeSize, BlockSize).NextWrite();
        await _applier.OnWriteAsync(new WriteFrame(1, 1, 1, w.Offset, data.Length), data, default); // a resend of sequence 1
        Assert.Equal(bytes, _store.Counters.GuestBytesWritten);
        Assert.Equal(2, _applier.LastAppliedSequence);
    }

    [Fact]
    public async Task A_sequence_gap_is_refused()
    {
        await Write(1);
        var e = await Assert.ThrowsAsync<StreamBrokenException>(() => Write(1, sequence: 5));
        Assert.Contains("resend from 2", e.Message);
    }

    [Fact]
    public async Task Frames_and_connections_of_another_generation_are_refused()
    {
        await Assert.ThrowsAsync<StreamBrokenException>(() => _applier.OnConnectedAsync(Hello(2, 1), default).AsTask());
        await Assert.ThrowsAsync<StreamBrokenException>(() => Write(1, generation: 0));
        Assert.Equal(0, _applier.LastAppliedSequence);
        Assert.Equal(0, _store.Counters.GuestBytesWritten);
    }

    [Fact]
    public async Task A_marker_whose_counts_disagree_breaks_the_stream_and_tells_the_secondary()
    {
        await Write(1);
        _writes++;
        var e = await Assert.ThrowsAsync<StreamBrokenException>(() => Marker(1));
        Assert.Contains("counts 2 writes", e.Message);
        Assert.Equal(1, _secondary.ExpectMsg<SecondaryStreamBroken>().Epoch);
    }

    [Fact]
    public async Task A_damaged_guest_state_breaks_the_stream()
    {
        var blob = _workload.Capture(1);
        blob[^1] ^= 0xFF;
        await Assert.ThrowsAsync<StreamBrokenException>(() =>
            _applier.OnGuestStateAsync(new GuestStateFrame(1, 1, 1, blob.Length), blob, default).AsTask());
        Assert.Contains("corrupt", _secondary.ExpectMsg<SecondaryStreamBroken>().Reason);
    }

    [Fact]
    public async Task After_the_store_rolls_back_the_stream_rewinds_to_the_first_frame_it_undid()
    {
        await Write(1);
        await Marker(1);
        await State(1); // sequences 1..3
        _gate.Run(s =>
        {
            s.Prepare(1);
            return 0;
        });
        await Write(2); // sequence 4, undone below
        await Write(2);
        _gate.Rollback(1);

        await Assert.ThrowsAsync<StoreRewoundException>(() => Write(2));
        Assert.Equal(3, await _applier.OnConnectedAsync(Hello(1, 4), default));
        Assert.Equal(3, _applier.LastAppliedSequence);
    }

    [Fact]
    public async Task A_marker_arriving_while_the_store_restarts_counts_for_nothing_and_the_reopened_store_rewinds_the_stream()
    {
        await Write(1);
        await Marker(1);
        await State(1); // sequences 1..3
        _secondary.ExpectMsg<StreamCheckpointReceived>();
        _gate.Run(s =>
        {
            s.Prepare(1);
            return 0;
        });
        await Write(2); // sequence 4: in the store about to restart
        var before = _gate.View.Incarnation;

        // The store actor's restart begins: the gate is empty until the store is reopened from disk.
        var store = _gate.Withdraw()!;
        Assert.True(_gate.View.Incarnation > before);
        await Assert.ThrowsAsync<StoreClosedException>(() => Marker(2));
        _secondary.ExpectNoMsg(TimeSpan.FromMilliseconds(200));

        // Reopened (here the same store; recovery would have undone epoch 2): resend from epoch 2.
        _gate.Publish(store);
        Assert.Equal(3, await _applier.OnConnectedAsync(Hello(1, 4), default));
    }

    [Fact]
    public async Task Frames_of_epochs_already_in_the_image_are_skipped()
    {
        _gate.Run(s =>
        {
            s.Prepare(2);
            return 0;
        });
        _gate.Rollback(2); // a new incarnation at checkpoint 2
        Assert.Equal(0, await _applier.OnConnectedAsync(Hello(1, 1), default));
        await Write(2); // epoch ≤ 2: already in the image
        Assert.Equal(0, _store.Counters.GuestBytesWritten);
        await Write(3);
        Assert.True(_store.Counters.GuestBytesWritten > 0);
        Assert.Equal(2, _applier.LastAppliedSequence);
    }

    [Fact]
    public void A_write_through_a_gate_without_a_store_throws_a_clear_exception()
    {
        var gate = new StoreGate();
        var e = Assert.Throws<StoreClosedException>(() => gate.Write(0, 1, 0, new byte[BlockSize]));
        Assert.Contains("no rollback store is open", e.Message);
        Assert.False(gate.View.Open);
    }

    [Fact]
    public async Task A_write_the_store_refuses_for_its_epoch_breaks_the_stream()
    {
        await Write(5);
        await Assert.ThrowsAsync<StreamBrokenException>(() => Write(4)); // epochs only move forward
        Assert.Contains("refused by the store", _secondary.ExpectMsg<SecondaryStreamBroken>().Reason);
    }

    public new void Dispose()
    {
        base.Dispose();
        _gate.Withdraw()?.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
