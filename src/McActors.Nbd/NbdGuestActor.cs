using System.Buffers.Binary;
using Akka.Actor;
using Akka.Event;
using McActors.Guests;

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
/// out. While paused, writes wait (held by <see cref="GuestActorBase"/>); reads and flushes go on.
/// A failed write fails that request with EIO and the guest runs on: the client owns its state. Its state blob is an
/// <see cref="OpaqueGuestState"/> of kind "nbd": the client owns its own state, so the blob holds
/// only the epoch and counters. It attaches its export to the node's <see cref="NbdExportSlot"/> when
/// it starts and detaches it when it stops, so the export lives exactly as long as the primary role.
/// </summary>
public sealed class NbdGuestActor : GuestActorBase
{
    public const string Kind = "nbd";

    private readonly NbdExportSlot _slot;
    private readonly ActorNbdExport _export;

    // Requests by the tag of their GuestWrite / GuestRead (a held write has its tag already).
    private readonly Dictionary<long, NbdWriteRequest> _writes = [];
    private readonly Dictionary<long, TaskCompletionSource<byte[]>> _reads = [];
    // Applied writes whose replies wait for their epoch's checkpoint to commit, by epoch.
    private readonly SortedDictionary<long, List<TaskCompletionSource>> _uncommitted = [];
    private long _writeCount;
    private long _bytes;

    public NbdGuestActor(GuestContext guest, NbdExportSlot slot, int zeroChunkBytes) : base(guest)
    {
        _slot = slot;
        _export = new ActorNbdExport(Self, guest.Volume.SizeBytes, zeroChunkBytes);
    }

    /// <summary>The guest of the primary <paramref name="guest"/> describes, serving the export through <paramref name="slot"/>.</summary>
    public static Props Props(GuestContext guest, NbdExportSlot slot, int zeroChunkBytes) =>
        Akka.Actor.Props.Create(() => new NbdGuestActor(guest, slot, zeroChunkBytes));

    /// <summary>The guest factory of a replica serving NBD through <paramref name="slot"/>.</summary>
    public static Func<GuestContext, Props> ForReplica(NbdExportSlot slot, NbdOptions options) =>
        guest => Props(guest, slot, options.ZeroChunkBytes);

    protected override (long Writes, long Bytes) Counters => (_writeCount, _bytes);

    protected override void ReceiveGuestMessages()
    {
        // A write issued while the guest runs epoch E is applied in E: the primary closes E only
        // after this guest paused, which it does once every issued write was applied.
        Receive<NbdWriteRequest>(m => _writes[Write(m.Offset, m.Data)] = m);
        Receive<NbdReadRequest>(m => _reads[Read(m.Offset, m.Length)] = m.Done);
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
    }

    protected override void OnWriteCompleted(long tag, long epoch)
    {
        if (!_writes.Remove(tag, out var write))
            return;
        _writeCount++;
        _bytes += write.Data.Length;
        ReplyAtCommit(epoch, write.Done);
    }

    protected override void OnWriteFailed(long tag, long epoch, string reason)
    {
        if (!_writes.Remove(tag, out var write))
            return;
        Log.Warning("nbd guest: write of {0} B at {1} failed: {2}", write.Data.Length, write.Offset, reason);
        write.Done.TrySetException(new NbdErrorException(NbdProtocol.EIo, reason));
    }

    protected override void OnReadCompleted(long tag, byte[] data)
    {
        if (_reads.Remove(tag, out var done))
            done.TrySetResult(data);
    }

    protected override void OnReadFailed(long tag, string reason)
    {
        if (_reads.Remove(tag, out var done))
            done.TrySetException(new NbdErrorException(NbdProtocol.EIo, reason));
    }

    protected override byte[] CaptureState(long epoch)
    {
        var payload = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(payload, _writeCount);
        BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(8), _bytes);
        return new OpaqueGuestState(Kind, epoch, payload).Serialize();
    }

    protected override void RestoreState(long epoch, byte[] state)
    {
        if (!OpaqueGuestState.HasMagic(state))
        {
            // A volume written by another guest (the synthetic one) before: the disk is the state.
            Log.Info("nbd guest: checkpoint {0}'s state is not an NBD guest's; counters start at zero", epoch);
        }
        else
        {
            var parsed = OpaqueGuestState.Parse(state);
            if (parsed.Kind == Kind && parsed.Payload.Length >= 16)
            {
                _writeCount = BinaryPrimitives.ReadInt64LittleEndian(parsed.Payload);
                _bytes = BinaryPrimitives.ReadInt64LittleEndian(parsed.Payload.AsSpan(8));
            }
        }
    }

    // A write of an abandoned lineage, or one held when the guest stopped: its reply must not say it
    // happened. ESHUTDOWN: the client resends it (to this server or the next primary).
    protected override void OnWriteAbandoned(long tag, string reason)
    {
        if (_writes.Remove(tag, out var write))
            write.Done.TrySetException(new NbdErrorException(NbdProtocol.EShutdown, reason));
    }

    protected override void PreStart()
    {
        _slot.Attach(_export);
        Log.Info("nbd guest: serving the volume ({0} B) as export '{1}'", _export.SizeBytes, _slot.ExportName);
    }

    protected override void PostStop()
    {
        // The export dies with the primary role: connections close, and every request still waiting
        // ends with NBD_ESHUTDOWN (an unanswered FLUSH was never promised: the client retries elsewhere).
        _slot.Detach(_export);
        _export.Close();
        var gone = new NbdErrorException(NbdProtocol.EShutdown, "the primary role stopped");
        foreach (var write in _writes.Values)
            write.Done.TrySetException(gone);
        foreach (var read in _reads.Values)
            read.TrySetException(gone);
        foreach (var reply in _uncommitted.Values.SelectMany(r => r))
            reply.TrySetException(gone);
        base.PostStop();
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
            ReleaseWhenCommitted(new NbdEpochCommitted(epoch));
        }
        replies.Add(done);
    }
}
