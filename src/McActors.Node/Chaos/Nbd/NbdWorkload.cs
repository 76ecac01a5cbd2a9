using McActors.Nbd;

namespace McActors.Node.Chaos.Nbd;

/// <summary>
/// The shape of a run's NBD workload, drawn from its seed: 1–4 connections, 1–8 requests in flight
/// on each, writes of 1–<see cref="MaxWriteSectors"/> sectors at random sector offsets in the first
/// <see cref="RegionSectors"/> sectors (small, so writes overlap), and the mix of requests.
/// </summary>
public sealed record NbdWorkloadPlan(int Connections, int Depth, long RegionSectors, int MaxWriteSectors, double WriteShare, double FuaShare, double FlushShare)
{
    public static NbdWorkloadPlan From(int seed)
    {
        var random = new Random(seed);
        return new NbdWorkloadPlan(
            random.Next(1, 5),
            random.Next(1, 9),
            RegionSectors: 4096 << random.Next(3), // 2, 4 or 8 MiB
            MaxWriteSectors: 8 << random.Next(4), // 4, 8, 16 or 32 KiB
            WriteShare: 0.5 + random.NextDouble() * 0.3,
            FuaShare: random.NextDouble() * 0.2,
            FlushShare: 0.05 + random.NextDouble() * 0.15);
    }

    public override string ToString() =>
        $"{Connections} connection{(Connections > 1 ? "s" : "")} x qd {Depth}, {RegionSectors * SectorPattern.SectorSize >> 20} MiB region, writes ≤ {MaxWriteSectors} sectors";
}

/// <summary>
/// A seeded NBD workload on <see cref="NbdWorkloadPlan.Connections"/> reconnecting sessions: writes
/// whose every sector carries (write id, sector, checksum), FLUSHes, FUA writes and READs at random,
/// each recorded in a <see cref="BlockHistoryRecorder"/> as issued and as answered. After the run,
/// <see cref="ReadBackAsync"/> reads the whole region from the (final) primary.
/// </summary>
public sealed class NbdWorkload : IAsyncDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromMilliseconds(100);
    private const int ReadBackChunkSectors = 2048; // 1 MiB per final READ
    private readonly NbdWorkloadPlan _plan;
    private readonly long _tag;
    private readonly int _seed;
    private readonly string _exportName;
    private readonly Func<IReadOnlyList<string>> _candidates;
    private readonly List<ReconnectingNbdSession> _sessions;

    public NbdWorkload(NbdWorkloadPlan plan, int seed, string exportName, Func<IReadOnlyList<string>> candidates)
    {
        _plan = plan;
        _seed = seed;
        _tag = seed;
        _exportName = exportName;
        _candidates = candidates;
        _sessions = [.. Enumerable.Range(0, plan.Connections).Select(i => new ReconnectingNbdSession(i, exportName, candidates, RequestTimeout, ReconnectDelay))];
    }

    public NbdWorkloadPlan Plan => _plan;

    public BlockHistoryRecorder Recorder { get; } = new();

    /// <summary>The export advertised CAN_MULTI_CONN (a FLUSH on one connection covers writes completed on all).</summary>
    public bool MultiConn { get; private set; }

    public int Reconnects => _sessions.Sum(s => s.Reconnects);

    public IEnumerable<string> Refusals => _sessions.SelectMany(s => s.Refusals);

    /// <summary>
    /// Issues requests until <paramref name="stopIssuing"/>, then waits for those in flight (resent
    /// after reconnects as needed) until <paramref name="giveUp"/>; an unanswered one stays so.
    /// </summary>
    public async Task RunAsync(CancellationToken stopIssuing, CancellationToken giveUp)
    {
        var workers = new List<Task>();
        for (var c = 0; c < _plan.Connections; c++)
            for (var d = 0; d < _plan.Depth; d++)
                workers.Add(WorkerAsync(_sessions[c], new Random(HashCode.Combine(_seed, c, d)), stopIssuing, giveUp));
        await Task.WhenAll(workers).ConfigureAwait(false);
    }

    /// <summary>Reads the whole region back on a fresh session (to the primary of now), recorded as the final reads.</summary>
    public async Task ReadBackAsync(CancellationToken giveUp)
    {
        await using var session = new ReconnectingNbdSession(_plan.Connections, _exportName, _candidates, RequestTimeout, ReconnectDelay);
        for (var sector = 0L; sector < _plan.RegionSectors; sector += ReadBackChunkSectors)
        {
            var sectors = (int)Math.Min(ReadBackChunkSectors, _plan.RegionSectors - sector);
            await ReadAsync(session, sector, sectors, final: true, giveUp).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var session in _sessions)
            await session.DisposeAsync().ConfigureAwait(false);
    }

    private async Task WorkerAsync(ReconnectingNbdSession session, Random random, CancellationToken stopIssuing, CancellationToken giveUp)
    {
        try
        {
            while (!stopIssuing.IsCancellationRequested)
            {
                var dice = random.NextDouble();
                if (dice < _plan.WriteShare)
                {
                    var sectors = random.Next(1, _plan.MaxWriteSectors + 1);
                    var sector = random.NextInt64(0, _plan.RegionSectors - sectors + 1);
                    await WriteAsync(session, sector, sectors, random.NextDouble() < _plan.FuaShare, giveUp).ConfigureAwait(false);
                }
                else if (dice < _plan.WriteShare + _plan.FlushShare)
                    await FlushAsync(session, giveUp).ConfigureAwait(false);
                else
                {
                    var sectors = random.Next(1, _plan.MaxWriteSectors + 1);
                    await ReadAsync(session, random.NextInt64(0, _plan.RegionSectors - sectors + 1), sectors, final: false, giveUp).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (giveUp.IsCancellationRequested)
        {
        }
    }

    private async Task WriteAsync(ReconnectingNbdSession session, long sector, int sectors, bool fua, CancellationToken giveUp)
    {
        var id = Recorder.NextId();
        var data = SectorPattern.Fill(_tag, id, sector, sectors);
        var write = Recorder.Issue(new WriteRecord(id, session.Connection, sector, sectors, fua, 0, null, null));
        var sends = 0;
        try
        {
            string server;
            (_, sends, server) = await session.CallAsync(async c =>
            {
                MultiConn |= c.CanMultiConn;
                await c.WriteAsync(sector * SectorPattern.SectorSize, data, fua && c.CanFua).ConfigureAwait(false);
                return true;
            }, giveUp).ConfigureAwait(false);
            Recorder.Replied(write, null, sends, server);
        }
        catch (NbdCommandException e)
        {
            Recorder.Replied(write, e.Message, e.Sends, e.Server);
        }
        catch (OperationCanceledException)
        {
            Recorder.Unanswered(write, sends);
            throw;
        }
    }

    private async Task FlushAsync(ReconnectingNbdSession session, CancellationToken giveUp)
    {
        var flush = Recorder.Issue(new FlushRecord(Recorder.NextId(), session.Connection, 0, null, null));
        var sends = 0;
        try
        {
            string server;
            (_, sends, server) = await session.CallAsync(async c =>
            {
                await c.FlushAsync().ConfigureAwait(false);
                return true;
            }, giveUp).ConfigureAwait(false);
            Recorder.Replied(flush, null, sends, server);
        }
        catch (NbdCommandException e)
        {
            Recorder.Replied(flush, e.Message, e.Sends, e.Server);
        }
        catch (OperationCanceledException)
        {
            Recorder.Unanswered(flush, sends);
            throw;
        }
    }

    private async Task ReadAsync(ReconnectingNbdSession session, long sector, int sectors, bool final, CancellationToken giveUp)
    {
        var read = Recorder.Issue(new ReadRecord(Recorder.NextId(), session.Connection, sector, sectors, 0, null, null, null, final));
        try
        {
            var (data, sends, server) = await session.CallAsync(c => c.ReadAsync(sector * SectorPattern.SectorSize, sectors * SectorPattern.SectorSize), giveUp)
                .ConfigureAwait(false);
            Recorder.Replied(read, null, SectorPattern.DecodeAll(data, _tag, sector), sends, server);
        }
        catch (NbdCommandException e)
        {
            Recorder.Replied(read, e.Message, null, e.Sends, e.Server);
        }
    }
}
