using System.Buffers.Binary;

namespace McActors.Node.Chaos.Nbd;

/// <summary>What one 512-byte sector read back holds: never written (zeros), a write's pattern, or bytes no write produced.</summary>
public enum SectorKind
{
    Zero,
    Written,
    Garbage,
}

/// <summary>One sector's content as decoded: <see cref="WriteId"/> for <see cref="SectorKind.Written"/>, <see cref="Detail"/> for garbage.</summary>
public readonly record struct SectorContent(SectorKind Kind, long WriteId = 0, string? Detail = null)
{
    public static readonly SectorContent Zero = new(SectorKind.Zero);

    public static SectorContent Of(long writeId) => new(SectorKind.Written, writeId);

    public override string ToString() => Kind switch
    {
        SectorKind.Zero => "zeros",
        SectorKind.Written => $"write {WriteId}",
        _ => $"garbage ({Detail})",
    };
}

/// <summary>
/// The bytes a chaos write puts in each sector, so any read can be attributed to the write that
/// produced it: magic, the run's tag, the write's id, the sector's own number (data at the wrong
/// place is caught), filler derived from those, and a checksum over all of it (a torn or mixed
/// sector is caught).
/// </summary>
public static class SectorPattern
{
    public const int SectorSize = 512;
    private const ulong Magic = 0x4D434E4244534543; // "MCNBDSEC"
    private const int ChecksumAt = SectorSize - 8;

    /// <summary>The payload of write <paramref name="writeId"/> over sectors [<paramref name="firstSector"/>, +<paramref name="sectors"/>).</summary>
    public static byte[] Fill(long tag, long writeId, long firstSector, int sectors)
    {
        var data = new byte[sectors * SectorSize];
        for (var i = 0; i < sectors; i++)
            FillSector(data.AsSpan(i * SectorSize, SectorSize), tag, writeId, firstSector + i);
        return data;
    }

    public static void FillSector(Span<byte> sector, long tag, long writeId, long sectorNumber)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(sector, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(sector[8..], tag);
        BinaryPrimitives.WriteInt64LittleEndian(sector[16..], writeId);
        BinaryPrimitives.WriteInt64LittleEndian(sector[24..], sectorNumber);
        var x = (ulong)writeId * 0x9E3779B97F4A7C15UL ^ (ulong)sectorNumber ^ (ulong)tag << 1;
        for (var at = 32; at < ChecksumAt; at += 8)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BinaryPrimitives.WriteUInt64LittleEndian(sector[at..], x);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(sector[ChecksumAt..], Checksum(sector[..ChecksumAt]));
    }

    /// <summary>Decodes sector <paramref name="sectorNumber"/> as read back.</summary>
    public static SectorContent Decode(ReadOnlySpan<byte> sector, long tag, long sectorNumber)
    {
        if (!sector.ContainsAnyExcept((byte)0))
            return SectorContent.Zero;
        if (BinaryPrimitives.ReadUInt64LittleEndian(sector) != Magic)
            return new SectorContent(SectorKind.Garbage, Detail: "no pattern magic");
        if (BinaryPrimitives.ReadUInt64LittleEndian(sector[ChecksumAt..]) != Checksum(sector[..ChecksumAt]))
            return new SectorContent(SectorKind.Garbage, Detail: $"bad checksum (claims write {BinaryPrimitives.ReadInt64LittleEndian(sector[16..])})");
        var writeId = BinaryPrimitives.ReadInt64LittleEndian(sector[16..]);
        if (BinaryPrimitives.ReadInt64LittleEndian(sector[8..]) != tag)
            return new SectorContent(SectorKind.Garbage, Detail: $"another run's pattern (write {writeId})");
        var at = BinaryPrimitives.ReadInt64LittleEndian(sector[24..]);
        if (at != sectorNumber)
            return new SectorContent(SectorKind.Garbage, Detail: $"write {writeId}'s sector {at} found at sector {sectorNumber}");
        return SectorContent.Of(writeId);
    }

    public static IReadOnlyList<SectorContent> DecodeAll(ReadOnlySpan<byte> data, long tag, long firstSector)
    {
        var result = new SectorContent[data.Length / SectorSize];
        for (var i = 0; i < result.Length; i++)
            result[i] = Decode(data.Slice(i * SectorSize, SectorSize), tag, firstSector + i);
        return result;
    }

    // FNV-1a, 64 bit: enough to tell a whole pattern sector from a torn or mixed one.
    private static ulong Checksum(ReadOnlySpan<byte> bytes)
    {
        var h = 0xcbf29ce484222325UL;
        foreach (var b in bytes)
            h = (h ^ b) * 0x100000001b3UL;
        return h;
    }
}
