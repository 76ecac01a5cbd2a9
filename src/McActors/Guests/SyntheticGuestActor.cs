using Akka.Actor;
using Akka.Event;

namespace McActors.Guests;

/// <summary>
/// The built-in synthetic guest: drives a <see cref="SyntheticWorkload"/> against a disk actor
/// through the guest protocol (GuestProtocol.cs). Starts paused in epoch 0.
/// States: Paused → (ResumeGuest) Running → (PauseGuest) Pausing → (last write answered) Paused;
/// a failed write stops it (Stopped) until a RestoreGuestState brings it back to a checkpoint.
/// </summary>
public sealed class SyntheticGuestActor : ReceiveActor
{
    private readonly IActorRef _disk;
    private readonly SyntheticGuestOptions _options;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    // Tags never repeat, across restores too: a late answer to a write of an abandoned lineage
    // cannot be taken for an answer to a current one.
    private readonly HashSet<long> _outstanding = [];
    private readonly List<(IActorRef Requester, long Epoch)> _pauseWaiters = [];
    private SyntheticWorkload _workload;
    private long _nextTag;
    private long _epoch;
    private string _state = "Paused";
    private string? _failure;

    public SyntheticGuestActor(IActorRef disk, SyntheticGuestOptions options)
    {
        options.Validate();
        _disk = disk;
        _options = options;
        _workload = new SyntheticWorkload(options.Seed, options.VolumeSizeBytes, options.BlockSize);
        Paused();
    }

    public static Props Props(IActorRef disk, SyntheticGuestOptions options) =>
        Akka.Actor.Props.Create(() => new SyntheticGuestActor(disk, options));

    private void Paused()
    {
        _state = "Paused";
        Receive<ResumeGuest>(m =>
        {
            _epoch = m.Epoch;
            Become(Running);
            Sender.Tell(new GuestResumed(m.Epoch));
            IssueWrites();
        });
        Receive<PauseGuest>(m => Sender.Tell(new GuestPaused(m.Epoch)));
        Receive<CaptureGuestState>(m => Sender.Tell(new GuestStateCaptured(m.Epoch, _workload.Capture(m.Epoch))));
        Receive<RestoreGuestState>(Restore);
        Common();
    }

    private void Running()
    {
        _state = "Running";
        Receive<GuestWriteCompleted>(m => _outstanding.Contains(m.Tag), m =>
        {
            _outstanding.Remove(m.Tag);
            IssueWrites();
        });
        Receive<GuestWriteFailed>(m => _outstanding.Contains(m.Tag), WriteFailed);
        Receive<PauseGuest>(m =>
        {
            if (_outstanding.Count == 0)
            {
                Become(Paused);
                Sender.Tell(new GuestPaused(m.Epoch));
                return;
            }
            _pauseWaiters.Add((Sender, m.Epoch));
            Become(Pausing);
        });
        // A repeated resume (e.g. re-sent by a recovering primary) is harmless: acknowledge it.
        Receive<ResumeGuest>(m => m.Epoch == _epoch, m => Sender.Tell(new GuestResumed(m.Epoch)));
        Common();
    }

    private void Pausing()
    {
        _state = "Pausing";
        Receive<GuestWriteCompleted>(m => _outstanding.Contains(m.Tag), m =>
        {
            _outstanding.Remove(m.Tag);
            if (_outstanding.Count > 0)
                return;
            Become(Paused);
            foreach (var (requester, epoch) in _pauseWaiters)
                requester.Tell(new GuestPaused(epoch));
            _pauseWaiters.Clear();
        });
        Receive<GuestWriteFailed>(m => _outstanding.Contains(m.Tag), WriteFailed);
        Receive<PauseGuest>(m => _pauseWaiters.Add((Sender, m.Epoch)));
        Common();
    }

    private void Stopped()
    {
        _state = "Stopped";
        Receive<RestoreGuestState>(Restore);
        Common();
    }

    /// <summary>Handlers every state shares; registered last, so a state's own handlers win.</summary>
    private void Common()
    {
        Receive<GetGuestStatus>(_ => Sender.Tell(new GuestStatus(
            _workload.WriteCount, _workload.BytesWritten, _epoch, _outstanding.Count, _state == "Paused", _state, _failure)));
        // Answers to writes of an abandoned lineage (before a restore), or after a failure: nothing to do.
        Receive<GuestWriteCompleted>(m => _log.Debug("ignoring completion of write {0}, not outstanding", m.Tag));
        Receive<GuestWriteFailed>(m => _log.Debug("ignoring failure of write {0}, not outstanding: {1}", m.Tag, m.Reason));
        Receive<PauseGuest>(Refuse);
        Receive<CaptureGuestState>(Refuse);
        Receive<RestoreGuestState>(Refuse);
        Receive<ResumeGuest>(Refuse);
    }

    private void Refuse(object command)
    {
        var reason = _failure is null
            ? $"the guest is {_state} (epoch {_epoch})"
            : $"the guest is {_state} (epoch {_epoch}) after a failure: {_failure}";
        Sender.Tell(new GuestCommandRefused(command, reason));
    }

    private void Restore(RestoreGuestState m)
    {
        SyntheticWorkload restored;
        try
        {
            restored = SyntheticWorkload.Restore(m.State);
        }
        catch (GuestStateCorruptException e)
        {
            Sender.Tell(new GuestCommandRefused(m, e.Message));
            return;
        }
        if (restored.VolumeSizeBytes != _options.VolumeSizeBytes)
        {
            Sender.Tell(new GuestCommandRefused(m, $"state is for a volume of {restored.VolumeSizeBytes} B, the disk has {_options.VolumeSizeBytes} B"));
            return;
        }
        _workload = restored;
        _outstanding.Clear(); // writes of the abandoned lineage: their answers will be ignored
        _epoch = m.Epoch;
        _failure = null;
        Become(Paused);
        Sender.Tell(new GuestRestored(m.Epoch));
    }

    private void WriteFailed(GuestWriteFailed m)
    {
        // The workload already counts this write, so its state no longer describes the disk:
        // stop, and refuse to be paused or captured until a restore.
        _outstanding.Remove(m.Tag);
        _failure = $"write {m.Tag} failed: {m.Reason}";
        _log.Error("synthetic guest stopped: {0}", _failure);
        foreach (var (requester, epoch) in _pauseWaiters)
            requester.Tell(new GuestCommandRefused(new PauseGuest(epoch), _failure));
        _pauseWaiters.Clear();
        Become(Stopped);
    }

    private void IssueWrites()
    {
        while (_outstanding.Count < _options.MaxOutstanding && !(_workload.WriteCount >= _options.WriteLimit))
        {
            var (write, data) = _workload.NextWrite();
            var tag = ++_nextTag;
            _outstanding.Add(tag);
            _disk.Tell(new GuestWrite(write.Offset, data, tag));
        }
    }
}
