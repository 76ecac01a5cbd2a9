namespace McActors.Node.Chaos.Nbd;

/// <summary>
/// The block-device promises, checked over what an NBD client was told (a <see cref="BlockHistory"/>),
/// never over the cluster's internal state. Per sector:
/// <list type="bullet">
/// <item>(nbd-a) durability: a write W completed (success reply) before a successful FLUSH was issued
/// (on any connection if the export has CAN_MULTI_CONN, else on W's), with no error reply to any
/// request in between, is durable once that FLUSH succeeded; a completed FUA write is durable at its
/// own reply. Every read issued after that (the final read of the touched range included) must
/// return W's pattern or that of a write not answered before W was issued (one that may have landed
/// after it). Zeros, or an older write's pattern, mean a completed write was lost after a FLUSH
/// promised it.</item>
/// <item>(nbd-b) no invented data: every sector read is zeros or the valid pattern of a write that
/// covers that sector and was issued before the read was answered.</item>
/// </list>
/// One primary per generation, (c), is <see cref="ChaosChecks"/>' (4).
/// </summary>
public static class BlockHistoryChecker
{
    public static IReadOnlyList<string> Check(BlockHistory history, bool multiConn)
    {
        var problems = new List<string>();
        var writes = history.Writes.ToDictionary(w => w.Id);
        var durableAt = DurableAt(history, multiConn);
        var bySector = new Dictionary<long, List<WriteRecord>>();
        foreach (var w in history.Writes)
            for (var s = w.Sector; s < w.Sector + w.Sectors; s++)
            {
                if (!bySector.TryGetValue(s, out var list))
                    bySector[s] = list = [];
                list.Add(w);
            }

        foreach (var read in history.Reads)
        {
            if (read.Result is not { } result)
                continue;
            var what = (read.Final ? $"the final read (read {read.Id})" : $"read {read.Id} on connection {read.Connection}") +
                (read.Server is null ? "" : $" from {read.Server}");
            // One line per (read, cause): a lost write shows in every sector it covered.
            var lost = new Dictionary<long, (long First, int Count, string Detail)>();
            var invented = new Dictionary<string, (long First, int Count)>();
            for (var i = 0; i < result.Count; i++)
            {
                var sector = read.Sector + i;
                var content = result[i];
                WriteRecord? found = null;
                if (content.Kind == SectorKind.Garbage)
                    Count(invented, $"garbage: {content.Detail}", sector);
                else if (content.Kind == SectorKind.Written)
                {
                    if (!writes.TryGetValue(content.WriteId, out found))
                        Count(invented, $"the pattern of write {content.WriteId}, which was never issued", sector);
                    else if (!found.Covers(sector))
                        Count(invented, $"the pattern of {found}, which never covered it", sector);
                    else if (read.RepliedAt is { } answered && found.IssuedAt > answered)
                        Count(invented, $"the pattern of {found}, issued at t={found.IssuedAt}, after the read's reply at t={answered}", sector);
                }

                if (!bySector.TryGetValue(sector, out var covering))
                    continue;
                foreach (var w in covering)
                {
                    if (!durableAt.TryGetValue(w.Id, out var durable) || durable.At >= read.IssuedAt)
                        continue;
                    // W' may hold the sector instead of W unless W' was answered before W was issued.
                    if (found is not null && found.Covers(sector) && !(found.RepliedAt is { } r && r < w.IssuedAt))
                        continue;
                    if (lost.TryGetValue(w.Id, out var seen))
                        lost[w.Id] = seen with { Count = seen.Count + 1 };
                    else
                        lost[w.Id] = (sector, 1, $"{content}{(found is null ? "" : $" (answered at t={found.RepliedAt}, before the write was issued)")}");
                }
            }
            foreach (var (id, (first, count, detail)) in lost)
            {
                var w = writes[id];
                problems.Add($"(nbd-a) {w}, completed at t={w.RepliedAt}{(w.Server is null ? "" : $" by {w.Server}")}, durable since {durableAt[id].Because}; " +
                    $"{what}, issued at t={read.IssuedAt}, found sector {first}{(count > 1 ? $" (and {count - 1} more of its sectors)" : "")}: {detail}");
            }
            foreach (var (detail, (first, count)) in invented)
                problems.Add($"(nbd-b) {what} of sectors {read.Sector}+{read.Sectors} found sector {first}{(count > 1 ? $" (and {count - 1} more)" : "")}: {detail}");
        }
        return problems;
    }

    /// <summary>For each durable write: the tick from which every read must see it, and why.</summary>
    internal static Dictionary<long, (long At, string Because)> DurableAt(BlockHistory history, bool multiConn)
    {
        var errors = history.ErrorTimes.Order().ToArray();
        var flushes = history.Flushes.Where(f => f.Succeeded).OrderBy(f => f.RepliedAt).ToList();
        var result = new Dictionary<long, (long, string)>();
        foreach (var w in history.Writes.Where(w => w.Completed))
        {
            var completed = w.RepliedAt!.Value;
            if (w.Fua)
            {
                result[w.Id] = (completed, "its own FUA reply");
                continue;
            }
            // An error reply after the write and before the FLUSH was issued releases the FLUSH from covering it.
            var index = Array.BinarySearch(errors, completed);
            var nextError = index >= 0 ? errors[index] : ~index < errors.Length ? errors[~index] : long.MaxValue;
            var flush = flushes.FirstOrDefault(f => f.IssuedAt > completed && f.IssuedAt < nextError && (multiConn || f.Connection == w.Connection));
            if (flush is not null)
                result[w.Id] = (flush.RepliedAt!.Value, $"flush {flush.Id} on connection {flush.Connection} (issued at t={flush.IssuedAt}, succeeded at t={flush.RepliedAt}" +
                    $"{(flush.Sends > 1 ? $" after {flush.Sends} sends" : "")}{(flush.Server is null ? "" : $" from {flush.Server}")})");
        }
        return result;
    }

    private static void Count(Dictionary<string, (long First, int Count)> into, string key, long sector) =>
        into[key] = into.TryGetValue(key, out var seen) ? seen with { Count = seen.Count + 1 } : (sector, 1);
}
