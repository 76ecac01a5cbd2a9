namespace McActors.Node.Chaos.Nbd;

/// <summary>
/// One WRITE as the client saw it: issued at <see cref="IssuedAt"/> (first send; a resend after a
/// reconnect is the same write), answered at <see cref="RepliedAt"/> with success (<see cref="Error"/>
/// null) or an error; never answered if <see cref="RepliedAt"/> is null. Times are ticks of the
/// history's one logical clock, so "before" is the real order of what the client saw.
/// </summary>
public sealed record WriteRecord(long Id, int Connection, long Sector, int Sectors, bool Fua, long IssuedAt, long? RepliedAt, string? Error, int Sends = 1, string? Server = null)
{
    public bool Completed => RepliedAt is not null && Error is null;
    public bool Covers(long sector) => sector >= Sector && sector < Sector + Sectors;
    public override string ToString() => $"write {Id}{(Fua ? " (FUA)" : "")} of sectors {Sector}+{Sectors} on connection {Connection}";
}

/// <summary>One FLUSH: issued, answered (success if <see cref="Error"/> is null), or never answered.</summary>
public sealed record FlushRecord(long Id, int Connection, long IssuedAt, long? RepliedAt, string? Error, int Sends = 1, string? Server = null)
{
    public bool Succeeded => RepliedAt is not null && Error is null;
}

/// <summary>One READ and, if it succeeded, what each sector held; <see cref="Final"/>: the after-the-run read of the touched range.</summary>
public sealed record ReadRecord(long Id, int Connection, long Sector, int Sectors, long IssuedAt, long? RepliedAt, string? Error,
    IReadOnlyList<SectorContent>? Result, bool Final = false, int Sends = 1, string? Server = null);

/// <summary>Everything a chaos NBD workload was told, in one logical time.</summary>
public sealed record BlockHistory(IReadOnlyList<WriteRecord> Writes, IReadOnlyList<FlushRecord> Flushes, IReadOnlyList<ReadRecord> Reads)
{
    /// <summary>Ticks at which any request got an error reply (not a dropped connection: a client that reconnects and resends never sees one).</summary>
    public IEnumerable<long> ErrorTimes =>
        Writes.Where(w => w is { Error: not null, RepliedAt: not null }).Select(w => w.RepliedAt!.Value)
            .Concat(Flushes.Where(f => f is { Error: not null, RepliedAt: not null }).Select(f => f.RepliedAt!.Value))
            .Concat(Reads.Where(r => r is { Error: not null, RepliedAt: not null }).Select(r => r.RepliedAt!.Value));
}

/// <summary>Records a history from many connections at once: a logical clock, and every request as it is issued (stamped before it is sent) and answered.</summary>
public sealed class BlockHistoryRecorder
{
    private readonly Lock _lock = new();
    private readonly Dictionary<long, WriteRecord> _writes = [];
    private readonly Dictionary<long, FlushRecord> _flushes = [];
    private readonly Dictionary<long, ReadRecord> _reads = [];
    private long _clock;
    private long _ids;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, DateTime> _times = new();

    public long Tick()
    {
        var tick = Interlocked.Increment(ref _clock);
        _times[tick] = DateTime.UtcNow;
        return tick;
    }

    /// <summary>The wall-clock instant of <paramref name="tick"/> (to read a history beside the nodes' logs).</summary>
    public DateTime? TimeOf(long? tick) => tick is { } t && _times.TryGetValue(t, out var at) ? at : null;

    public long NextId() => Interlocked.Increment(ref _ids);

    public WriteRecord Issue(WriteRecord write) => Set(_writes, write.Id, write with { IssuedAt = Tick() });

    public FlushRecord Issue(FlushRecord flush) => Set(_flushes, flush.Id, flush with { IssuedAt = Tick() });

    public ReadRecord Issue(ReadRecord read) => Set(_reads, read.Id, read with { IssuedAt = Tick() });

    /// <summary>The reply, stamped when the client has it (after it arrived: ticks order issues and replies as the client saw them).</summary>
    public void Replied(WriteRecord write, string? error, int sends, string? server) =>
        Set(_writes, write.Id, write with { RepliedAt = Tick(), Error = error, Sends = sends, Server = server });

    public void Replied(FlushRecord flush, string? error, int sends, string? server) =>
        Set(_flushes, flush.Id, flush with { RepliedAt = Tick(), Error = error, Sends = sends, Server = server });

    public void Replied(ReadRecord read, string? error, IReadOnlyList<SectorContent>? result, int sends, string? server) =>
        Set(_reads, read.Id, read with { RepliedAt = Tick(), Error = error, Result = result, Sends = sends, Server = server });

    /// <summary>The history as text, one request a line with wall-clock times and the server that answered (kept beside a failed run's logs).</summary>
    public void WriteTo(string path)
    {
        var history = Snapshot();
        string At(long? tick) => TimeOf(tick) is { } t ? t.ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture) : "-";
        var lines = history.Writes.Select(w => (w.IssuedAt, $"t={w.IssuedAt} {At(w.IssuedAt)} {w} sends={w.Sends} replied t={w.RepliedAt} {At(w.RepliedAt)} by {w.Server ?? "-"}: {w.Error ?? (w.RepliedAt is null ? "unanswered" : "ok")}"))
            .Concat(history.Flushes.Select(f => (f.IssuedAt, $"t={f.IssuedAt} {At(f.IssuedAt)} flush {f.Id} on connection {f.Connection} sends={f.Sends} replied t={f.RepliedAt} {At(f.RepliedAt)} by {f.Server ?? "-"}: {f.Error ?? (f.RepliedAt is null ? "unanswered" : "ok")}")))
            .Concat(history.Reads.Select(r => (r.IssuedAt, $"t={r.IssuedAt} {At(r.IssuedAt)} {(r.Final ? "final " : "")}read {r.Id} of sectors {r.Sector}+{r.Sectors} on connection {r.Connection} sends={r.Sends} replied t={r.RepliedAt} {At(r.RepliedAt)} by {r.Server ?? "-"}: {r.Error ?? (r.Result is null ? "unanswered" : Runs(r))}")))
            .OrderBy(l => l.Item1).Select(l => l.Item2);
        File.WriteAllLines(path, lines);
    }

    private static string Runs(ReadRecord read)
    {
        var parts = new List<string>();
        var result = read.Result!;
        for (var i = 0; i < result.Count;)
        {
            var j = i;
            while (j < result.Count && result[j] == result[i])
                j++;
            parts.Add($"{read.Sector + i}+{j - i}={result[i]}");
            i = j;
        }
        return string.Join(" ", parts);
    }

    /// <summary>A request given up on without a reply (the run ended): it stays unanswered, with its send count.</summary>
    public void Unanswered(WriteRecord write, int sends) => Set(_writes, write.Id, write with { Sends = sends });

    public void Unanswered(FlushRecord flush, int sends) => Set(_flushes, flush.Id, flush with { Sends = sends });

    public BlockHistory Snapshot()
    {
        lock (_lock)
            return new BlockHistory([.. _writes.Values.OrderBy(w => w.IssuedAt)], [.. _flushes.Values.OrderBy(f => f.IssuedAt)],
                [.. _reads.Values.OrderBy(r => r.IssuedAt)]);
    }

    private T Set<T>(Dictionary<long, T> into, long id, T record)
    {
        lock (_lock)
            into[id] = record;
        return record;
    }
}
