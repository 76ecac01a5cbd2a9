using Akka.Actor;
using Akka.Event;
using McActors.Replication;

namespace McActors.Guests;

/// <summary>Where a guest is in the guest protocol (GuestProtocol.cs).</summary>
public enum GuestRunState
{
    /// <summary>No write in flight, none issued: the state can be captured or restored.</summary>
    Paused,
    /// <summary>Writes are issued in <see cref="GuestActorBase.Epoch"/>.</summary>
    Running,
    /// <summary>Told to pause; waiting for the writes already issued to be answered.</summary>
    Pausing,
    /// <summary>Failed (<see cref="GuestActorBase.Failure"/>): only a restore brings it back.</summary>
    Stopped,
}

/// <summary>
/// The guest protocol (GuestProtocol.cs) done once, for any guest: it starts paused in epoch 0;
/// resume, pause-once-drained, capture (only while paused), restore (while paused or stopped) and
/// the refusals are handled here, as Become states. A guest keeps only its I/O and its state:
/// <list type="bullet">
/// <item><see cref="Write"/> and <see cref="Read"/> go to the disk; a write asked for while the guest is
/// not running is held and issued at the next resume, in that epoch (so every write belongs to the
/// epoch it was issued in, and a pause waits only for writes issued); a restore or a stop drops it
/// (<see cref="OnWriteAbandoned"/>).</item>
/// <item><see cref="OnWriteCompleted"/> / <see cref="OnWriteFailed"/> / <see cref="OnReadCompleted"/> /
/// <see cref="OnReadFailed"/> report the answers; an answer to a tag this guest does not know (a
/// write of the lineage a restore abandoned) is ignored here and never reaches them.</item>
/// <item><see cref="CaptureState"/> and <see cref="RestoreState"/> are the guest state: throw
/// <see cref="GuestStateRefusedException"/> (or a <see cref="GuestStateCorruptException"/>) from <see cref="RestoreState"/> to refuse a blob.</item>
/// <item><see cref="ReceiveGuestMessages"/> registers the guest's own messages (its clients'
/// requests); it is called in every state, after the protocol's handlers.</item>
/// </list>
/// A failed write stops the guest by default (its state may no longer describe the disk), so it
/// refuses to be paused or captured until a restore; override <see cref="OnWriteFailed"/> to decide otherwise.
/// A refused restore stops it too (it must not run over a checkpoint's disk as anything but that
/// checkpoint's guest), and so does an exception from any handler: a guest is never restarted
/// fresh in place, which would capture an empty state over a disk that is not empty.
/// </summary>
public abstract class GuestActorBase : ReceiveActor
{
    // Tags never repeat, across restores too: a late answer to a write of an abandoned lineage
    // cannot be taken for an answer to a current one.
    private readonly Dictionary<long, long> _writes = []; // tag → epoch it was issued in
    private readonly HashSet<long> _reads = [];
    private readonly Queue<(long Tag, long Offset, byte[] Data)> _held = new();
    private readonly List<(IActorRef Requester, long Epoch)> _pauseWaiters = [];
    private long _nextTag;
    private long _issuedWrites;
    private long _issuedBytes;

    protected GuestActorBase(GuestContext guest)
    {
        Guest = guest;
        Log = Context.GetLogger();
        Paused();
    }

    /// <summary>The disk, volume, replica and settings this guest was started with.</summary>
    protected GuestContext Guest { get; }

    protected ILoggingAdapter Log { get; }

    /// <summary>The epoch of the last resume or restore: writes issued now belong to it.</summary>
    protected long Epoch { get; private set; }

    protected GuestRunState State { get; private set; } = GuestRunState.Paused;

    /// <summary>Why the guest stopped (null unless <see cref="State"/> is Stopped).</summary>
    protected string? Failure { get; private set; }

    /// <summary>Writes issued and not answered yet.</summary>
    protected int OutstandingWrites => _writes.Count;


    /// <summary>
    /// The counters <see cref="GetGuestStatus"/> reports; by default the writes and bytes issued
    /// since this actor started. A guest whose counters are part of its state overrides this.
    /// </summary>
    protected virtual (long Writes, long Bytes) Counters => (_issuedWrites, _issuedBytes);

    /// <summary>This guest's state at checkpoint <paramref name="epoch"/>, as bytes it can be rebuilt from.</summary>
    protected abstract byte[] CaptureState(long epoch);

    /// <summary>Become the guest <paramref name="state"/> describes (checkpoint <paramref name="epoch"/>); throw <see cref="GuestStateRefusedException"/> to refuse it.</summary>
    protected abstract void RestoreState(long epoch, byte[] state);

    /// <summary>Register the guest's own messages (<c>Receive&lt;T&gt;</c>); called in every state. Read <see cref="State"/> inside the handlers, not here.</summary>
    protected virtual void ReceiveGuestMessages()
    {
    }

    /// <summary>Running in <paramref name="epoch"/>; held writes were issued just before.</summary>
    protected virtual void OnResumed(long epoch)
    {
    }

    /// <summary>The write <paramref name="tag"/>, issued in <paramref name="epoch"/>, is applied.</summary>
    protected virtual void OnWriteCompleted(long tag, long epoch)
    {
    }

    /// <summary>The write <paramref name="tag"/> failed; by default the guest stops (<see cref="StopGuest"/>).</summary>
    protected virtual void OnWriteFailed(long tag, long epoch, string reason) => StopGuest($"write {tag} failed: {reason}");

    protected virtual void OnReadCompleted(long tag, byte[] data)
    {
    }

    protected virtual void OnReadFailed(long tag, string reason)
    {
    }

    /// <summary>
    /// The write <paramref name="tag"/> will never be answered to this guest: it was issued in the
    /// lineage a restore abandoned, or held when the guest stopped or was restored (a held write was
    /// placed for a state that is gone, so it is dropped, never issued). Fail its client here.
    /// </summary>
    protected virtual void OnWriteAbandoned(long tag, string reason)
    {
    }

    protected override bool AroundReceive(Receive receive, object message)
    {
        try
        {
            return base.AroundReceive(receive, message);
        }
        catch (Exception e) when (e is not ActorInitializationException)
        {
            // A restart would make a fresh guest in place of this one: stop instead, so that the
            // primary hears refusals (and a restore from the last checkpoint brings it back).
            Log.Error(e, "guest failed handling {0}", message.GetType().Name);
            StopGuest($"{message.GetType().Name} failed: {e.Message}");
            return true;
        }
    }

    /// <summary>
    /// Write <paramref name="data"/> at <paramref name="offset"/>; returns the tag its answer will
    /// carry. Issued now if running, else held until the next resume. The disk owns <paramref name="data"/>.
    /// </summary>
    protected long Write(long offset, byte[] data)
    {
        var tag = ++_nextTag;
        if (State == GuestRunState.Running)
            Issue(tag, offset, data);
        else
            _held.Enqueue((tag, offset, data));
        return tag;
    }

    /// <summary>Read <paramref name="length"/> bytes at <paramref name="offset"/> from the live image, in any state; returns the tag.</summary>
    protected long Read(long offset, int length)
    {
        var tag = ++_nextTag;
        _reads.Add(tag);
        Guest.Disk.Tell(new GuestRead(offset, length, tag));
        return tag;
    }

    /// <summary>Hand <paramref name="output"/> to the primary, which sends it back once a checkpoint holding every write applied so far committed.</summary>
    protected void ReleaseWhenCommitted(object output) => Guest.Disk.Tell(new ReleaseWhenCommitted(output));

    /// <summary>Stop: refuse to be paused or captured (waiting pauses are refused now) until a restore.</summary>
    protected void StopGuest(string failure)
    {
        if (State == GuestRunState.Stopped)
            return;
        Failure = failure;
        Log.Error("guest stopped: {0}", failure);
        foreach (var (requester, epoch) in _pauseWaiters)
            requester.Tell(new GuestCommandRefused(new PauseGuest(epoch), failure));
        _pauseWaiters.Clear();
        AbandonHeld($"the guest stopped: {failure}");
        Enter(GuestRunState.Stopped, Stopped);
    }

    private void Paused()
    {
        Receive<ResumeGuest>(m =>
        {
            Epoch = m.Epoch;
            Enter(GuestRunState.Running, Running);
            Sender.Tell(new GuestResumed(m.Epoch));
            while (State == GuestRunState.Running && _held.TryDequeue(out var held))
                Issue(held.Tag, held.Offset, held.Data);
            OnResumed(m.Epoch);
        });
        Receive<PauseGuest>(m => Sender.Tell(new GuestPaused(m.Epoch)));
        Receive<CaptureGuestState>(m => Sender.Tell(new GuestStateCaptured(m.Epoch, CaptureState(m.Epoch))));
        Receive<RestoreGuestState>(Restore);
        Common();
    }

    private void Running()
    {
        Receive<PauseGuest>(m =>
        {
            if (_writes.Count == 0)
            {
                Enter(GuestRunState.Paused, Paused);
                Sender.Tell(new GuestPaused(m.Epoch));
                return;
            }
            _pauseWaiters.Add((Sender, m.Epoch));
            Enter(GuestRunState.Pausing, Pausing);
        });
        // A repeated resume (e.g. re-sent by a recovering primary) is harmless: acknowledge it.
        Receive<ResumeGuest>(m => m.Epoch == Epoch, m => Sender.Tell(new GuestResumed(m.Epoch)));
        Common();
    }

    private void Pausing()
    {
        Receive<PauseGuest>(m => _pauseWaiters.Add((Sender, m.Epoch)));
        Common();
    }

    private void Stopped()
    {
        Receive<RestoreGuestState>(Restore);
        Common();
    }

    /// <summary>Handlers every state shares; registered after a state's own, so those win.</summary>
    private void Common()
    {
        Receive<GuestWriteCompleted>(m => _writes.ContainsKey(m.Tag), m =>
        {
            _writes.Remove(m.Tag, out var epoch);
            OnWriteCompleted(m.Tag, epoch);
            MaybeDrained();
        });
        Receive<GuestWriteFailed>(m => _writes.ContainsKey(m.Tag), m =>
        {
            _writes.Remove(m.Tag, out var epoch);
            OnWriteFailed(m.Tag, epoch, m.Reason);
            MaybeDrained();
        });
        Receive<GuestReadCompleted>(m => _reads.Remove(m.Tag), m => OnReadCompleted(m.Tag, m.Data));
        Receive<GuestReadFailed>(m => _reads.Remove(m.Tag), m => OnReadFailed(m.Tag, m.Reason));
        Receive<GetGuestStatus>(_ =>
        {
            var (writes, bytes) = Counters;
            Sender.Tell(new GuestStatus(writes, bytes, Epoch, _writes.Count, State == GuestRunState.Paused, State.ToString(), Failure));
        });
        ReceiveGuestMessages();
        // Answers of an abandoned lineage (before a restore): nothing to do.
        Receive<GuestWriteCompleted>(m => Log.Debug("ignoring completion of write {0}, not outstanding", m.Tag));
        Receive<GuestWriteFailed>(m => Log.Debug("ignoring failure of write {0}, not outstanding: {1}", m.Tag, m.Reason));
        Receive<GuestReadCompleted>(m => Log.Debug("ignoring read {0}, not outstanding", m.Tag));
        Receive<GuestReadFailed>(m => Log.Debug("ignoring failed read {0}, not outstanding: {1}", m.Tag, m.Reason));
        Receive<PauseGuest>(Refuse);
        Receive<CaptureGuestState>(Refuse);
        Receive<RestoreGuestState>(Refuse);
        Receive<ResumeGuest>(Refuse);
    }

    private void Enter(GuestRunState state, Action behaviour)
    {
        State = state;
        Become(behaviour);
    }

    private void Issue(long tag, long offset, byte[] data)
    {
        _writes[tag] = Epoch;
        _issuedWrites++;
        _issuedBytes += data.Length;
        Guest.Disk.Tell(new GuestWrite(offset, data, tag));
    }

    private void AbandonHeld(string reason)
    {
        while (_held.TryDequeue(out var held))
            OnWriteAbandoned(held.Tag, reason);
    }

    private void MaybeDrained()
    {
        if (State != GuestRunState.Pausing || _writes.Count > 0)
            return;
        Enter(GuestRunState.Paused, Paused);
        foreach (var (requester, epoch) in _pauseWaiters)
            requester.Tell(new GuestPaused(epoch));
        _pauseWaiters.Clear();
    }

    private void Refuse(object command)
    {
        var reason = Failure is null
            ? $"the guest is {State} (epoch {Epoch})"
            : $"the guest is {State} (epoch {Epoch}) after a failure: {Failure}";
        Sender.Tell(new GuestCommandRefused(command, reason));
    }

    private void Restore(RestoreGuestState m)
    {
        try
        {
            RestoreState(m.Epoch, m.State);
        }
        catch (GuestStateRefusedException e)
        {
            Sender.Tell(new GuestCommandRefused(m, e.Message));
            StopGuest($"the state of checkpoint {m.Epoch} was refused: {e.Message}");
            return;
        }
        // Writes issued or held before belong to the abandoned lineage: their answers are ignored.
        foreach (var tag in _writes.Keys)
            OnWriteAbandoned(tag, $"rolled back to checkpoint {m.Epoch}");
        _writes.Clear();
        AbandonHeld($"rolled back to checkpoint {m.Epoch}");
        Epoch = m.Epoch;
        Failure = null;
        Enter(GuestRunState.Paused, Paused);
        Sender.Tell(new GuestRestored(m.Epoch));
    }
}
