using System.Buffers.Binary;
using Akka.Actor;
using Akka.Event;
using McActors.Guests;
using McActors.Replication;

namespace McActors.Nbd;

/// <summary>
/// The primary's guest when the volume is served over NBD (GuestProtocol.cs): it owns the NBD
/// server's requests for this primary. A client is outside the checkpoint (it is not rolled back at
/// failover), so every reply that says a write happened is external output (DESIGN.md invariants 3
/// and 7, Remus' rule): WRITE (and WRITE_ZEROES, FUA or not) → <see cref="GuestWrite"/>, and once
/// applied the reply waits for the commit of the checkpoint holding the write. The writes of one
/// epoch share one <see cref="ReleaseWhenCommitted"/>, which makes the primary ask the coordinator
/// to close that epoch at once (group commit; later epochs close while it commits). READ →
/// <see cref="GuestRead"/>, answered at once (it may see a write not completed yet, which NBD allows).
/// FLUSH is answered at once: every write completed before it was committed before its reply went
/// out. While paused, writes wait here; reads and flushes go on. Its state blob is an
/// <see cref="OpaqueGuestState"/> of kind "nbd": the client owns its own state, so the blob holds
/// only the epoch and counters. It attaches its export to the node's <see cref="NbdExportSlot"/> when
/// it starts and detaches it when it stops, so the export lives exactly as long as the primary role.
/// </summary>
public sealed class NbdGuestActor : ReceiveActor
{
    public const string Kind = "nbd";

    private readonly IActorRef _disk;
    private readonly NbdExportSlot _slot;
    private readonly ActorNbdExport _export;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly Dictionary<long, (NbdWriteRequest Write, long Epoch)> _writes = [];
    private readonly Dictionary<long, TaskCompletionSource<byte[]>> _reads = [];
    // Applied writes whose replies wait for their epoch's checkpoint to commit, by epoch.
    private readonly SortedDictionary<long, List<TaskCompletionSource>> _uncommitted = [];
    private readonly Queue<NbdWriteRequest> _held = new();
    private long _tag;
    private long _epoch;
    private bool _paused = true; // a guest starts paused (GuestProtocol.cs)
    private long? _pausing;
    private long _writeCount;
    private long _bytes;

    public NbdGuestActor(IActorRef disk, NbdExportSlot slot, long sizeBytes, int zeroChunkBytes)
    {
        _disk = disk;
        _slot = slot;
        _export = new ActorNbdExport(Self, sizeBytes, zeroChunkBytes);

        Receive<NbdWriteRequest>(m =>
        {
            if (_paused)
                _held.Enqueue(m);
            else
                Issue(m);
        });
        Receive<NbdReadRequest>(m =>
        {
            var tag = ++_tag;
            _reads[tag] = m.Done;
            _disk.Tell(new GuestRead(m.Offset, m.Length, tag));
        });
        // Every completed write was committed before its reply: nothing left for a FLUSH to wait for.
        Receive<NbdFlushRequest>(m => m.Done.TrySetResult());
        Receive<NbdEpochCommitted>(m =>
        {
            // A checkpoint covering epoch m.Epoch committed, so every one before it did too.
            while (_uncommitted.Count > 0 && _uncommitted.First() is var (epoch, replies) && epoch <= m.Epoch)
            {
                _uncommitted.Remove(epoch);
                foreach (var reply in replies)
                    reply.TrySetResult();
            }
        });
        Receive<GuestWriteCompleted>(m =>
        {
            if (!_writes.Remove(m.Tag, out var issued))
                return;
            _writeCount++;
            _bytes += issued.Write.Data.Length;
            ReplyAtCommit(issued.Epoch, issued.Write.Done);
            MaybePaused();
        });
        Receive<GuestWriteFailed>(m =>
        {
            if (!_writes.Remove(m.Tag, out var issued))
                return;
            var write = issued.Write;
            _log.Warning("nbd guest: write of {0} B at {1} failed: {2}", write.Data.Length, write.Offset, m.Reason);
            write.Done.TrySetException(new NbdErrorException(NbdProtocol.EIo, m.Reason));
            MaybePaused();
        });
        Receive<GuestReadCompleted>(m =>
        {
            if (_reads.Remove(m.Tag, out var done))
                done.TrySetResult(m.Data);
        });
        Receive<GuestReadFailed>(m =>
        {
            if (_reads.Remove(m.Tag, out var done))
                done.TrySetException(new NbdErrorException(NbdProtocol.EIo, m.Reason));
        });

        Receive<PauseGuest>(m =>
        {
            _paused = true;
            _pausing = m.Epoch;
            MaybePaused();
        });
        Receive<CaptureGuestState>(m =>
        {
            if (!_paused || _pausing is not null)
            {
                Sender.Tell(new GuestCommandRefused(m, "capture while writes are admitted or outstanding"));
                return;
            }
            Sender.Tell(new GuestStateCaptured(m.Epoch, Serialize(m.Epoch)));
        });
        Receive<RestoreGuestState>(m =>
        {
            if (!_paused)
            {
                Sender.Tell(new GuestCommandRefused(m, "restore while running"));
                return;
            }
            if (!OpaqueGuestState.HasMagic(m.State))
            {
                // A volume written by another guest (the synthetic one) before: the disk is the state.
                _log.Info("nbd guest: checkpoint {0}'s state is not an NBD guest's; counters start at zero", m.Epoch);
            }
            else
            {
                try
                {
                    var state = OpaqueGuestState.Parse(m.State);
                    if (state.Kind == Kind && state.Payload.Length >= 16)
                    {
                        _writeCount = BinaryPrimitives.ReadInt64LittleEndian(state.Payload);
                        _bytes = BinaryPrimitives.ReadInt64LittleEndian(state.Payload.AsSpan(8));
                    }
                }
                catch (GuestStateCorruptException e)
                {
                    Sender.Tell(new GuestCommandRefused(m, e.Message));
                    return;
                }
            }
            _epoch = m.Epoch;
            Sender.Tell(new GuestRestored(m.Epoch));
        });
        Receive<ResumeGuest>(m =>
        {
            _epoch = m.Epoch;
            _paused = false;
            _pausing = null;
            while (!_paused && _held.TryDequeue(out var write))
                Issue(write);
            Sender.Tell(new GuestResumed(m.Epoch));
        });
        Receive<GetGuestStatus>(_ => Sender.Tell(new GuestStatus(_writeCount, _bytes, _epoch, _writes.Count, _paused,
            _pausing is not null ? "Pausing" : _paused ? "Paused" : "Running", null)));
    }

    /// <summary>
    /// The guest of a primary whose disk is <paramref name="disk"/>, serving the export through
    /// <paramref name="slot"/>; <paramref name="sizeBytes"/> is the volume's size.
    /// </summary>
    public static Props Props(IActorRef disk, NbdExportSlot slot, long sizeBytes, int zeroChunkBytes) =>
        Akka.Actor.Props.Create(() => new NbdGuestActor(disk, slot, sizeBytes, zeroChunkBytes));

    /// <summary>
    /// <see cref="ReplicaSettings.GuestProps"/> for a replica keeping its files in
    /// <paramref name="dataDirectory"/>: the guest learns the volume's size from the image's
    /// descriptor, which the primary has opened (or created) before it starts its guest.
    /// </summary>
    public static Func<IActorRef, Props> ForReplica(string dataDirectory, NbdExportSlot slot, NbdOptions options) =>
        disk => Props(disk, slot, Storage.Volume.VolumeDescriptor.Load(PrimaryVolumeFiles.ImageDirectory(dataDirectory)).SizeBytes,
            options.ZeroChunkBytes);

    protected override void PreStart()
    {
        _slot.Attach(_export);
        _log.Info("nbd guest: serving the volume ({0} B) as export '{1}'", _export.SizeBytes, _slot.ExportName);
    }

    protected override void PostStop()
    {
        // The export dies with the primary role: connections close, and every request still waiting
        // ends with NBD_ESHUTDOWN (an unanswered FLUSH was never promised: the client retries elsewhere).
        _slot.Detach(_export);
        _export.Close();
        var gone = new NbdErrorException(NbdProtocol.EShutdown, "the primary role stopped");
        foreach (var write in _writes.Values.Select(w => w.Write).Concat(_held))
            write.Done.TrySetException(gone);
        foreach (var read in _reads.Values)
            read.TrySetException(gone);
        foreach (var reply in _uncommitted.Values.SelectMany(r => r))
            reply.TrySetException(gone);
        base.PostStop();
    }

    private void Issue(NbdWriteRequest m)
    {
        var tag = ++_tag;
        // A write issued while the guest runs epoch E is applied in E: the primary closes E only
        // after this guest paused, which it does once every issued write was applied.
        _writes[tag] = (m, _epoch);
        _disk.Tell(new GuestWrite(m.Offset, m.Data, tag));
    }

    /// <summary>
    /// Holds an applied write's reply until its epoch's checkpoint commits. The first reply of an
    /// epoch sends the one ReleaseWhenCommitted the epoch's replies share: the primary ties it to the
    /// checkpoint covering every write applied before it, which holds this epoch's (the write was applied).
    /// </summary>
    private void ReplyAtCommit(long epoch, TaskCompletionSource done)
    {
        if (!_uncommitted.TryGetValue(epoch, out var replies))
        {
            _uncommitted[epoch] = replies = [];
            _disk.Tell(new ReleaseWhenCommitted(new NbdEpochCommitted(epoch)));
        }
        replies.Add(done);
    }

    private void MaybePaused()
    {
        if (_pausing is { } epoch && _writes.Count == 0)
        {
            _pausing = null;
            _disk.Tell(new GuestPaused(epoch));
        }
    }

    private byte[] Serialize(long epoch)
    {
        var payload = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(payload, _writeCount);
        BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8), _bytes);
        return new OpaqueGuestState(Kind, epoch, payload).Serialize();
    }
}
