using McActors.Node.Chaos.Nbd;

namespace McActors.Node.Tests;

/// <summary>
/// The NBD history checker on hand-made histories: each rule passes a history that keeps it and
/// flags one that breaks it. Times are the history's logical ticks.
/// </summary>
public sealed class BlockHistoryCheckerTests
{
    private const long Tag = 42;

    [Fact]
    public void A_write_flushed_and_read_back_passes()
    {
        var history = new BlockHistory(
            [Write(1, sector: 8, sectors: 4, issued: 1, replied: 2)],
            [Flush(2, issued: 3, replied: 5)],
            [Final(3, sector: 0, issued: 10, Content(16, (8, 4, 1)))]);
        Assert.Empty(BlockHistoryChecker.Check(history, multiConn: true));
    }

    [Fact]
    public void A_completed_write_lost_after_a_successful_flush_is_flagged()
    {
        // The reconnect bug: WRITE answered on the old primary, FLUSH resent and answered by the new one, the write gone.
        var history = new BlockHistory(
            [Write(1, sector: 8, sectors: 4, issued: 1, replied: 2)],
            [Flush(2, issued: 3, replied: 7, sends: 2)],
            [Final(3, sector: 0, issued: 10, Content(16))]);
        var problem = Assert.Single(BlockHistoryChecker.Check(history, multiConn: true));
        Assert.StartsWith("(nbd-a) write 1 of sectors 8+4", problem, StringComparison.Ordinal);
        Assert.Contains("flush 2", problem, StringComparison.Ordinal);
        Assert.Contains("found sector 8 (and 3 more of its sectors): zeros", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_older_write_where_a_flushed_one_should_be_is_flagged()
    {
        var history = new BlockHistory(
            [Write(1, sector: 0, sectors: 2, issued: 1, replied: 2), Write(2, sector: 0, sectors: 2, issued: 3, replied: 4)],
            [Flush(3, issued: 5, replied: 6)],
            [Final(4, sector: 0, issued: 10, Content(2, (0, 2, 1)))]);
        var problem = Assert.Single(BlockHistoryChecker.Check(history, multiConn: true));
        Assert.StartsWith("(nbd-a) write 2 of sectors 0+2", problem, StringComparison.Ordinal);
        Assert.Contains("write 1 (answered at t=2, before the write was issued)", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_later_or_concurrent_write_may_hold_a_flushed_writes_sectors()
    {
        var history = new BlockHistory(
            [
                Write(1, sector: 0, sectors: 4, issued: 2, replied: 3),
                Write(2, sector: 0, sectors: 2, issued: 1, replied: 6), // concurrent with 1: may land after it
                Write(3, sector: 2, sectors: 2, issued: 8, replied: null), // issued after the flush, never answered
            ],
            [Flush(4, issued: 4, replied: 5)],
            [Final(5, sector: 0, issued: 10, Content(4, (0, 2, 2), (2, 2, 3)))]);
        Assert.Empty(BlockHistoryChecker.Check(history, multiConn: true));
    }

    [Fact]
    public void A_flush_covers_only_writes_completed_before_it_was_issued_and_only_after_it_succeeded()
    {
        var history = new BlockHistory(
            [Write(1, sector: 0, sectors: 1, issued: 1, replied: 4)],
            [Flush(2, issued: 3, replied: 5), Flush(3, issued: 6, replied: 9)],
            [
                Read(4, sector: 0, sectors: 1, issued: 7, replied: 8, Content(1)), // flush 3 not answered yet: zeros allowed
                Read(5, sector: 0, sectors: 1, issued: 10, replied: 11, Content(1)), // after flush 3 succeeded: lost
            ]);
        var problem = Assert.Single(BlockHistoryChecker.Check(history, multiConn: true));
        Assert.Contains("read 5 on connection 0, issued at t=10", problem, StringComparison.Ordinal);
        Assert.Contains("flush 3", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void An_error_reply_between_the_write_and_the_flush_releases_the_flush_from_it()
    {
        var lostAfterError = new BlockHistory(
            [Write(1, sector: 0, sectors: 1, issued: 1, replied: 2), Write(2, sector: 5, sectors: 1, issued: 1, replied: 3, error: "EIO")],
            [Flush(3, issued: 4, replied: 5)],
            [Final(4, sector: 0, issued: 10, Content(1))]);
        Assert.Empty(BlockHistoryChecker.Check(lostAfterError, multiConn: true));

        // The error came after the flush was issued: the flush still covers the write.
        var errorTooLate = lostAfterError with { Writes = [lostAfterError.Writes[0], lostAfterError.Writes[1] with { RepliedAt = 6 }] };
        Assert.Single(BlockHistoryChecker.Check(errorTooLate, multiConn: true));
    }

    [Fact]
    public void Without_multi_conn_a_flush_covers_only_its_own_connections_writes()
    {
        var history = new BlockHistory(
            [Write(1, sector: 0, sectors: 1, issued: 1, replied: 2, connection: 0)],
            [Flush(2, issued: 3, replied: 4, connection: 1)],
            [Final(3, sector: 0, issued: 10, Content(1))]);
        Assert.Empty(BlockHistoryChecker.Check(history, multiConn: false));
        Assert.Single(BlockHistoryChecker.Check(history, multiConn: true));
    }

    [Fact]
    public void A_completed_fua_write_must_survive_without_a_flush()
    {
        var history = new BlockHistory(
            [Write(1, sector: 3, sectors: 1, issued: 1, replied: 2, fua: true), Write(2, sector: 4, sectors: 1, issued: 1, replied: 2)],
            [],
            [Final(3, sector: 0, issued: 10, Content(8))]);
        var problem = Assert.Single(BlockHistoryChecker.Check(history, multiConn: true));
        Assert.StartsWith("(nbd-a) write 1 (FUA)", problem, StringComparison.Ordinal);
        Assert.Contains("its own FUA reply", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Bytes_no_write_produced_are_flagged_and_zeros_are_not()
    {
        var writes = new[] { Write(1, sector: 0, sectors: 2, issued: 1, replied: 2), Write(2, sector: 4, sectors: 1, issued: 9, replied: 12) };
        Assert.Empty(BlockHistoryChecker.Check(new BlockHistory(writes, [], [Read(3, 0, 8, issued: 3, replied: 4, Content(8))]), multiConn: true));

        var garbage = Content(8);
        garbage[1] = new SectorContent(SectorKind.Garbage, Detail: "bad checksum");
        garbage[2] = SectorContent.Of(7); // never issued
        garbage[3] = SectorContent.Of(1); // write 1 covers sectors 0-1 only
        garbage[4] = SectorContent.Of(2); // issued at 9, after the read's reply at 6
        var problems = BlockHistoryChecker.Check(new BlockHistory(writes, [], [Read(3, 0, 8, issued: 5, replied: 6, garbage)]), multiConn: true);
        Assert.Equal(4, problems.Count);
        Assert.All(problems, p => Assert.StartsWith("(nbd-b) read 3", p, StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("sector 1: garbage: bad checksum", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("sector 2: the pattern of write 7, which was never issued", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("sector 3: the pattern of write 1 of sectors 0+2 on connection 0, which never covered it", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("sector 4: the pattern of write 2", StringComparison.Ordinal) && p.Contains("after the read's reply at t=6", StringComparison.Ordinal));
    }

    [Fact]
    public void A_sector_pattern_decodes_to_its_write_and_any_damage_is_garbage()
    {
        var data = SectorPattern.Fill(Tag, writeId: 77, firstSector: 10, sectors: 3);
        Assert.Equal([SectorContent.Of(77), SectorContent.Of(77), SectorContent.Of(77)], SectorPattern.DecodeAll(data, Tag, 10));
        Assert.Equal(SectorContent.Zero, SectorPattern.Decode(new byte[SectorPattern.SectorSize], Tag, 0));

        Assert.Equal(SectorKind.Garbage, SectorPattern.Decode(data.AsSpan(0, SectorPattern.SectorSize), Tag, 11).Kind); // sector 10's data at 11
        Assert.Equal(SectorKind.Garbage, SectorPattern.Decode(data.AsSpan(0, SectorPattern.SectorSize), Tag + 1, 10).Kind); // another run
        var torn = data.AsSpan(0, SectorPattern.SectorSize).ToArray();
        torn[200] ^= 1;
        Assert.Contains("bad checksum", SectorPattern.Decode(torn, Tag, 10).Detail, StringComparison.Ordinal);
        var mixed = data.AsSpan(0, SectorPattern.SectorSize).ToArray();
        SectorPattern.Fill(Tag, writeId: 78, firstSector: 10, sectors: 1).AsSpan(256).CopyTo(mixed.AsSpan(256)); // half of another write
        Assert.Equal(SectorKind.Garbage, SectorPattern.Decode(mixed, Tag, 10).Kind);
    }

    private static WriteRecord Write(long id, long sector, int sectors, long issued, long? replied, string? error = null, bool fua = false, int connection = 0) =>
        new(id, connection, sector, sectors, fua, issued, replied, error);

    private static FlushRecord Flush(long id, long issued, long? replied, string? error = null, int connection = 0, int sends = 1) =>
        new(id, connection, issued, replied, error, sends);

    private static ReadRecord Read(long id, long sector, int sectors, long issued, long replied, SectorContent[] result) =>
        new(id, 0, sector, sectors, issued, replied, null, result);

    private static ReadRecord Final(long id, long sector, long issued, SectorContent[] result) =>
        new(id, 99, sector, result.Length, issued, issued + 1, null, result, Final: true);

    /// <summary><paramref name="sectors"/> sectors of zeros, with (first, count, write id) runs of written ones.</summary>
    private static SectorContent[] Content(int sectors, params (int First, int Count, long Write)[] runs)
    {
        var result = Enumerable.Repeat(SectorContent.Zero, sectors).ToArray();
        foreach (var (first, count, write) in runs)
            for (var i = first; i < first + count; i++)
                result[i] = SectorContent.Of(write);
        return result;
    }
}
