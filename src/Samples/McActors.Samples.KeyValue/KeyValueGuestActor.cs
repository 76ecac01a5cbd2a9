using Akka.Actor;
using McActors.Guests;

namespace McActors.Samples.KeyValue;

/// <summary>
/// A replicated key-value store as a McActors guest. The table lives in memory and is the guest
/// state; every put is appended to the disk as a log record (KeyValueLog), so the disk, rolled back
/// with the table at a failover, always holds exactly the log the table replays. <see cref="GuestActorBase"/>
/// does the guest protocol; this class only maps requests to I/O:
/// <list type="bullet">
/// <item>Put → a record written at the log's end; once applied (and every record before it), the
/// table takes it; the reply waits for the commit of the checkpoint holding it (a failover rolls
/// back everything after the last commit, so an earlier "done" could be a lie).</item>
/// <item>Get → the table's value, at once if the key's last put is committed, else after that commit.</item>
/// <item>Verify → reads the log back [0, head), replays it against the table and checks its running
/// hash against the state's, so that every record is checked, not only each key's last.</item>
/// </list>
/// It reaches clients through the node's <see cref="KeyValueFrontDoor"/> (<c>/user/kv-store</c>), which
/// it joins at its first resume (after any restore: no request can be waiting in the old lineage's log space).
/// </summary>
public sealed class KeyValueGuestActor : GuestActorBase
{
    // Puts written or waiting at most: beyond it a put is refused (busy), so a burst cannot grow memory without bound.
    public const int MaxPendingPuts = 1024;

    private readonly ICanTell _frontDoor;
    private KeyValueState _state = new();
    private long _nextOffset; // where the next record goes: after every record written or waiting
    private long _nextSequence;
    private bool _attached;

    // Records written or waiting, by write tag (= log order), until they and all before them are applied.
    private readonly SortedDictionary<long, Pending> _pending = [];
    // Keys whose last applied put is not committed yet → that put's epoch.
    private readonly Dictionary<string, long> _uncommittedKeys = [];
    // PutDone replies waiting for their epoch's commit.
    private readonly SortedDictionary<long, List<(IActorRef Client, PutDone Reply)>> _waitingReplies = [];
    private readonly List<(IActorRef Client, string Key)> _waitingGets = [];
    private long _committed;
    private Verification? _verification;

    public KeyValueGuestActor(GuestContext guest, ICanTell? frontDoor) : base(guest) =>
        _frontDoor = frontDoor ?? Context.ActorSelection($"/user/{KeyValueFrontDoor.Name}");

    /// <summary>The store's guest, serving through <paramref name="frontDoor"/> (by default the node's <c>/user/kv-store</c>).</summary>
    public static Props Props(GuestContext guest, ICanTell? frontDoor = null) =>
        Akka.Actor.Props.Create(() => new KeyValueGuestActor(guest, frontDoor));

    protected override (long Writes, long Bytes) Counters => (_state.Sequence, _state.Head);

    protected override void ReceiveGuestMessages()
    {
        Receive<Put>(OnPut);
        Receive<Get>(m =>
        {
            if (string.IsNullOrEmpty(m.Key))
                Sender.Tell(new Refused(m, "the key is empty"));
            else if (_uncommittedKeys.ContainsKey(m.Key))
                _waitingGets.Add((Sender, m.Key));
            else
                Sender.Tell(new Value(m.Key, _state.Table.GetValueOrDefault(m.Key)));
        });
        Receive<Verify>(OnVerify);
        Receive<EpochCommitted>(m => OnCommitted(m.Epoch));
    }

    protected override byte[] CaptureState(long epoch) => _state.Serialize(epoch);

    protected override void RestoreState(long epoch, byte[] state)
    {
        _state = KeyValueState.Parse(state);
        // Records written or waiting in the abandoned lineage are refused one by one (OnWriteAbandoned).
        _uncommittedKeys.Clear(); // the restored table is a committed checkpoint's
        _nextOffset = _state.Head;
        _nextSequence = _state.Sequence;
        _committed = epoch;
    }

    protected override void OnResumed(long epoch)
    {
        if (_attached)
            return;
        _attached = true;
        _frontDoor.Tell(new KeyValueFrontDoor.Attach(Self), Self);
    }

    protected override void OnWriteCompleted(long tag, long epoch)
    {
        if (!_pending.TryGetValue(tag, out var done))
            return;
        _pending[tag] = done with { Epoch = epoch };
        // The table takes records in log order: a record applied out of order waits for those before it.
        while (_pending.Count > 0 && _pending.First() is var (first, pending) && pending.Epoch is { } applied)
        {
            _pending.Remove(first);
            _state.Apply(pending.Record, pending.End);
            _uncommittedKeys[pending.Record.Key] = applied;
            if (!_waitingReplies.TryGetValue(applied, out var replies))
            {
                _waitingReplies[applied] = replies = [];
                ReleaseWhenCommitted(new EpochCommitted(applied));
            }
            replies.Add((pending.Client, new PutDone(pending.Record.Key, applied)));
        }
    }

    protected override void OnWriteAbandoned(long tag, string reason)
    {
        if (_pending.Remove(tag, out var pending))
            pending.Client.Tell(new Refused(new Put(pending.Record.Key, pending.Record.Value), reason));
    }

    protected override void OnWriteFailed(long tag, long epoch, string reason)
    {
        // A hole in the log: nothing after it can be replayed, so every waiting put fails and the
        // guest stops until a restore brings back a checkpoint's table and log.
        foreach (var pending in _pending.Values)
            pending.Client.Tell(new Refused(new Put(pending.Record.Key, pending.Record.Value), $"log write failed: {reason}"));
        _pending.Clear();
        base.OnWriteFailed(tag, epoch, reason);
    }

    protected override void OnReadCompleted(long tag, byte[] data) => _verification = _verification?.Received(tag, data);

    protected override void OnReadFailed(long tag, string reason)
    {
        if (_verification is null)
            return;
        _verification.Client.Tell(new Verified(false, 0, 0, $"reading the log failed: {reason}"));
        _verification = null;
    }

    private void OnPut(Put m)
    {
        if (State == GuestRunState.Stopped)
        {
            Sender.Tell(new Refused(m, $"the store stopped: {Failure}"));
            return;
        }
        if (m.Key is null || m.Value is null)
        {
            Sender.Tell(new Refused(m, "key and value must not be null"));
            return;
        }
        if (_pending.Count >= MaxPendingPuts)
        {
            Sender.Tell(new Refused(m, $"busy: {_pending.Count} puts are being written"));
            return;
        }
        byte[] bytes;
        var record = new LogRecord(_nextSequence + 1, m.Key, m.Value);
        try
        {
            bytes = KeyValueLog.Encode(record);
        }
        catch (ArgumentException e)
        {
            Sender.Tell(new Refused(m, e.Message));
            return;
        }
        if (bytes.Length > Guest.Settings.DataPlane.MaxPayloadBytes)
        {
            Sender.Tell(new Refused(m, $"a record of {bytes.Length} B exceeds the data plane's {Guest.Settings.DataPlane.MaxPayloadBytes} B"));
            return;
        }
        if (_nextOffset + bytes.Length > Guest.Volume.SizeBytes)
        {
            Sender.Tell(new Refused(m, $"the log is full ({_nextOffset} of {Guest.Volume.SizeBytes} B)"));
            return;
        }
        _nextSequence++;
        var tag = Write(_nextOffset, bytes);
        _nextOffset += bytes.Length;
        _pending[tag] = new Pending(record, _nextOffset, Sender, null);
    }

    private void OnCommitted(long epoch)
    {
        // A checkpoint covering epoch `epoch` committed, so every one before it did too.
        _committed = Math.Max(_committed, epoch);
        while (_waitingReplies.Count > 0 && _waitingReplies.First() is var (e, replies) && e <= _committed)
        {
            _waitingReplies.Remove(e);
            foreach (var (client, reply) in replies)
                client.Tell(reply);
        }
        foreach (var key in _uncommittedKeys.Where(k => k.Value <= _committed).Select(k => k.Key).ToList())
            _uncommittedKeys.Remove(key);
        _waitingGets.RemoveAll(waiting =>
        {
            if (_uncommittedKeys.ContainsKey(waiting.Key))
                return false;
            waiting.Client.Tell(new Value(waiting.Key, _state.Table.GetValueOrDefault(waiting.Key)));
            return true;
        });
    }

    private void OnVerify(Verify m)
    {
        if (_verification is not null)
        {
            Sender.Tell(new Refused(m, "a verification is running"));
            return;
        }
        // Everything before the head is applied, so a read sees it; the table is copied as of now. One
        // sector past the head is read too, unless a record is being written there: the log must end
        // at the head (a record beyond it is what a rollback that missed something would leave).
        var end = _pending.Count == 0 ? Math.Min(_state.Head + KeyValueLog.SectorSize, Guest.Volume.SizeBytes) : _state.Head;
        var chunk = Guest.Settings.DataPlane.MaxPayloadBytes / KeyValueLog.SectorSize * KeyValueLog.SectorSize;
        var reads = new Dictionary<long, long>();
        for (long offset = 0; offset < end; offset += chunk)
            reads[Read(offset, (int)Math.Min(chunk, end - offset))] = offset;
        _verification = new Verification(Sender, _state.Head, _state.Sequence, _state.LogHash, new(_state.Table, StringComparer.Ordinal), reads, new byte[end]);
        if (reads.Count == 0)
            _verification = _verification.Received(-1, []);
    }

    /// <summary>Primary → this guest (through ReleaseWhenCommitted): a checkpoint covering <see cref="Epoch"/> committed.</summary>
    private sealed record EpochCommitted(long Epoch);

    private sealed record Pending(LogRecord Record, long End, IActorRef Client, long? Epoch);

    private sealed record Verification(IActorRef Client, long Head, long Sequence, ulong LogHash, SortedDictionary<string, string> Table,
        Dictionary<long, long> Reads, byte[] Log)
    {
        /// <summary>Takes one read's bytes; once all are in, answers the client and returns null.</summary>
        public Verification? Received(long tag, byte[] data)
        {
            if (Reads.Remove(tag, out var offset))
                data.CopyTo(Log, offset);
            if (Reads.Count > 0)
                return this;
            Client.Tell(Check());
            return null;
        }

        private Verified Check()
        {
            List<LogRecord> records;
            long end;
            try
            {
                (records, end) = KeyValueLog.Decode(Log);
            }
            catch (InvalidDataException e)
            {
                return new Verified(false, 0, Table.Count, e.Message);
            }
            if (end != Head || records.Count != Sequence)
                return new Verified(false, records.Count, Table.Count, $"the log holds {records.Count} records up to {end}; the table says {Sequence} up to {Head}");
            var replay = new SortedDictionary<string, string>(StringComparer.Ordinal);
            var hash = 0UL;
            for (var i = 0; i < records.Count; i++)
            {
                if (records[i].Sequence != i + 1)
                    return new Verified(false, records.Count, Table.Count, $"record {i} has sequence {records[i].Sequence}");
                replay[records[i].Key] = records[i].Value;
                hash = KeyValueLog.Chain(hash, records[i]);
            }
            var differing = replay.Keys.Union(Table.Keys).FirstOrDefault(k => replay.GetValueOrDefault(k) != Table.GetValueOrDefault(k));
            if (differing is not null)
                return new Verified(false, records.Count, Table.Count, $"key '{differing}': log says '{replay.GetValueOrDefault(differing)}', table '{Table.GetValueOrDefault(differing)}'");
            // The replay only sees each key's last record; the hash sees every record, so an older one
            // that is wrong (a later put of its key hides it from the table) is caught here.
            return hash == LogHash
                ? new Verified(true, records.Count, Table.Count, "the log replays to the table and hashes as the table's records did")
                : new Verified(false, records.Count, Table.Count,
                    $"the log replays to the table but its records hash to {hash:x16}, the table's to {LogHash:x16}: a record a later put overwrote is not the one written");
        }
    }
}
