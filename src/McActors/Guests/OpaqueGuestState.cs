using System.Buffers.Binary;
using System.IO.Hashing;

namespace McActors.Guests;

/// <summary>
/// The checkpoint blob of a guest that is not the synthetic one (the NBD export, your own guest): a
/// checksummed envelope saying which checkpoint it belongs to, around bytes only that guest reads.
/// The secondary needs no more than the epoch to file it (<see cref="GuestStateBlob.EpochOf"/>).
/// Layout, little-endian:
/// <code>
///   0  u32 magic "McGO"        4  u16 format version   6  u16 kind length k
///   8  i64 epoch              16  i32 payload length n
///  20  kind (k bytes, ASCII)  20+k  payload (n bytes)
/// end  u64 XxHash3 of every byte before it
/// </code>
/// </summary>
public sealed record OpaqueGuestState(string Kind, long Epoch, byte[] Payload)
{
    public const uint Magic = 0x4F47634D; // "McGO"
    public const ushort FormatVersion = 1;
    public const int HeaderSize = 20;
    public const int ChecksumSize = 8;
    private const int MaxKindLength = 64;

    public byte[] Serialize()
    {
        if (Kind.Length is 0 or > MaxKindLength || Kind.Any(c => c is < ' ' or > '~'))
            throw new ArgumentException($"guest kind '{Kind}' must be 1..{MaxKindLength} printable ASCII characters");
        var blob = new byte[HeaderSize + Kind.Length + Payload.Length + ChecksumSize];
        var s = blob.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(s[4..], FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(s[6..], (ushort)Kind.Length);
        BinaryPrimitives.WriteInt64LittleEndian(s[8..], Epoch);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], Payload.Length);
        System.Text.Encoding.ASCII.GetBytes(Kind, s[HeaderSize..]);
        Payload.CopyTo(s[(HeaderSize + Kind.Length)..]);
        BinaryPrimitives.WriteUInt64LittleEndian(s[^ChecksumSize..], XxHash3.HashToUInt64(s[..^ChecksumSize]));
        return blob;
    }

    public static bool HasMagic(ReadOnlySpan<byte> blob) => blob.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(blob) == Magic;

    /// <summary>Reads a blob written by <see cref="Serialize"/>; a damaged, cut or foreign one throws a <see cref="GuestStateCorruptException"/>.</summary>
    public static OpaqueGuestState Parse(ReadOnlySpan<byte> blob)
    {
        if (!HasMagic(blob))
            throw new GuestStateCorruptException("not an opaque guest state (bad magic)");
        if (blob.Length < HeaderSize + ChecksumSize)
            throw new GuestStateTruncatedException(blob.Length, HeaderSize + ChecksumSize);
        var kindLength = BinaryPrimitives.ReadUInt16LittleEndian(blob[6..]);
        var payloadLength = BinaryPrimitives.ReadInt32LittleEndian(blob[16..]);
        var expected = (long)HeaderSize + kindLength + payloadLength + ChecksumSize;
        if (payloadLength < 0 || kindLength is 0 or > MaxKindLength)
            throw new GuestStateCorruptException($"kind length {kindLength} or payload length {payloadLength} is invalid");
        if (expected > blob.Length)
            throw new GuestStateTruncatedException(blob.Length, expected);
        if (expected != blob.Length)
            throw new GuestStateCorruptException($"blob is {blob.Length} B, its header says {expected} B");
        var stored = BinaryPrimitives.ReadUInt64LittleEndian(blob[^ChecksumSize..]);
        var computed = XxHash3.HashToUInt64(blob[..^ChecksumSize]);
        if (stored != computed)
            throw new GuestStateChecksumException(stored, computed);
        var format = BinaryPrimitives.ReadUInt16LittleEndian(blob[4..]);
        if (format != FormatVersion)
            throw new GuestStateCorruptException($"format version {format} is not supported (this build reads {FormatVersion})");
        var epoch = BinaryPrimitives.ReadInt64LittleEndian(blob[8..]);
        if (epoch < 0)
            throw new GuestStateCorruptException($"negative epoch {epoch}");
        var kind = System.Text.Encoding.ASCII.GetString(blob.Slice(HeaderSize, kindLength));
        return new OpaqueGuestState(kind, epoch, blob.Slice(HeaderSize + kindLength, payloadLength).ToArray());
    }
}

/// <summary>What a secondary checks of any guest's blob: that it is intact, and which checkpoint it was captured at.</summary>
public static class GuestStateBlob
{
    /// <summary>
    /// The epoch of a synthetic (<see cref="GuestState"/>) or opaque (<see cref="OpaqueGuestState"/>)
    /// blob, fully validated; throws a <see cref="GuestStateCorruptException"/> otherwise.
    /// </summary>
    public static long EpochOf(ReadOnlySpan<byte> blob) =>
        OpaqueGuestState.HasMagic(blob) ? OpaqueGuestState.Parse(blob).Epoch : GuestState.Parse(blob).Epoch;
}
