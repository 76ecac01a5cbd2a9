using McActors.Node.LocalCluster;

namespace McActors.Node.Chaos.Nbd;

/// <summary>What the NBD workload of a run did, for its summary line.</summary>
public sealed record NbdRunStats(NbdWorkloadPlan Plan, int Writes, int WritesCompleted, int WriteErrors, int Flushes, int FlushesSucceeded,
    int Reads, int Reconnects, int Resent, int Unanswered)
{
    public override string ToString() =>
        $"nbd {Plan}: {WritesCompleted}/{Writes} writes ok ({WriteErrors} errors), {FlushesSucceeded}/{Flushes} flushes ok, {Reads} reads, " +
        $"{Reconnects} reconnects, {Resent} requests resent, {Unanswered} unanswered";
}

/// <summary>
/// The <c>--client nbd</c> side of a chaos run: the workload on the run's local cluster from the
/// moment roles are assigned, through the fault and the recovery, then stopped, drained (requests in
/// flight resent until answered), the touched range read back from the final primary, and
/// <see cref="BlockHistoryChecker"/> over the whole history. The client finds the primary in
/// DATA/cluster.json (the runner keeps it current) or in a refusal's message.
/// </summary>
public sealed class NbdChaosClient : IAsyncDisposable
{
    /// <summary>How long the workload keeps going once the cluster recovered (its requests on the new primary after the failover).</summary>
    public static readonly TimeSpan AfterRecovery = TimeSpan.FromSeconds(2);

    /// <summary>How long requests in flight at the stop get to be answered (resent to the primary as needed).</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The history of a run that broke a rule, in its data directory.</summary>
    public const string HistoryFile = "nbd-history.txt";

    private readonly NbdWorkload _workload;
    private readonly string _dataDirectory;
    private readonly CancellationTokenSource _stopIssuing = new();
    private readonly CancellationTokenSource _giveUp;
    private readonly Task _running;

    private NbdChaosClient(NbdWorkload workload, string dataDirectory, CancellationToken cancel)
    {
        _workload = workload;
        _dataDirectory = dataDirectory;
        _giveUp = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        _running = Task.Run(() => workload.RunAsync(_stopIssuing.Token, _giveUp.Token), CancellationToken.None);
    }

    /// <summary>Starts the workload of <paramref name="plan"/> against the cluster whose cluster.json is in <paramref name="dataDirectory"/>.</summary>
    public static NbdChaosClient Start(ChaosPlan plan, string dataDirectory, CancellationToken cancel) =>
        new(new NbdWorkload(NbdWorkloadPlan.From(plan.GuestSeed), plan.GuestSeed, "", () => Candidates(dataDirectory)), dataDirectory, cancel);

    /// <summary>Replicas' NBD addresses from cluster.json, the primary's first; none while the file cannot be read.</summary>
    public static IReadOnlyList<string> Candidates(string dataDirectory)
    {
        try
        {
            return [.. TopologyFile.Read(dataDirectory).Where(n => n.Nbd is not null).OrderBy(n => n.Role == "primary" ? 0 : 1).Select(n => n.Nbd!)];
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException or InvalidDataException)
        {
            return [];
        }
    }

    /// <summary>Stops issuing, drains, reads back, checks; every broken rule is added to <paramref name="seen"/>'s problems.</summary>
    public async Task FinishAsync(ChaosObservations seen)
    {
        _stopIssuing.Cancel();
        _giveUp.CancelAfter(DrainTimeout);
        try
        {
            await _running.ConfigureAwait(false);
            await _workload.ReadBackAsync(_giveUp.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_giveUp.IsCancellationRequested)
        {
            seen.Problems.Add($"(nbd) the final read of the touched range got no answer within {DrainTimeout.TotalSeconds:0} s of the stop " +
                $"(last refusals: {string.Join("; ", _workload.Refusals.TakeLast(3))})");
        }
        var history = _workload.Recorder.Snapshot();
        var stats = StatsOf(history);
        if (history.Reads.Any(r => r.Final && r.Result is null) && !seen.Problems.Any(p => p.StartsWith("(nbd)", StringComparison.Ordinal)))
            seen.Problems.Add($"(nbd) the final read failed: {history.Reads.First(r => r.Final && r.Result is null).Error}");
        var broken = BlockHistoryChecker.Check(history, _workload.MultiConn);
        seen.Problems.AddRange(broken);
        seen.Notes.Add(stats.ToString());
        if (broken.Count > 0 || seen.Problems.Count > 0)
            _workload.Recorder.WriteTo(Path.Combine(_dataDirectory, HistoryFile));
    }

    public async ValueTask DisposeAsync()
    {
        _stopIssuing.Cancel();
        _giveUp.Cancel();
        try
        {
            await _running.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await _workload.DisposeAsync().ConfigureAwait(false);
        _stopIssuing.Dispose();
        _giveUp.Dispose();
    }

    private NbdRunStats StatsOf(BlockHistory history)
    {
        var workload = history.Reads.Where(r => !r.Final).ToList();
        var all = history.Writes.Select(w => (w.Sends, w.RepliedAt)).Concat(history.Flushes.Select(f => (f.Sends, f.RepliedAt)))
            .Concat(workload.Select(r => (r.Sends, r.RepliedAt))).ToList();
        return new NbdRunStats(
            _workload.Plan,
            history.Writes.Count, history.Writes.Count(w => w.Completed), history.Writes.Count(w => w.Error is not null),
            history.Flushes.Count, history.Flushes.Count(f => f.Succeeded), workload.Count,
            _workload.Reconnects, all.Count(a => a.Sends > 1), all.Count(a => a.RepliedAt is null));
    }
}
