using System.Buffers.Binary;
using McActors.DataPlane;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>How a turn of a resync copy ended.</summary>
public enum CopyTurn
{
    /// <summary>A chunk waits on the joiner's full window: the copy goes on once it is sent.</summary>
    WaitingForWindow,

    /// <summary>The turn's scan budget is spent: the copy goes on at the next turn.</summary>
    MoreToScan,

    /// <summary>Every chunk is scanned and the differing ones sent: sync-complete is next.</summary>
    Scanned,
}

/// <summary>
/// The primary's side of one resync, driven by its actor a turn at a time: a scan of its image,
/// chunk by chunk in order, that yields the chunks whose hash differs from the joiner's digest
/// (every non-zero chunk when the joiner has no image). The turns run inside the actor, between
/// guest writes, so a chunk is read and sent before any later write to it is streamed. It holds
/// the copy's state (how far, the joiner's stream, its attempt, when progress was last reported);
/// the actor sends, reports and finishes. Not thread-safe.
/// </summary>
public sealed class ResyncCopy
{
    /// <summary>How often the coordinator hears of the copy's progress (a few times a second: it is shown to operators).</summary>
    public static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(250);

    private readonly byte[]? _digest;
    private readonly long _volumeSize;
    private readonly int _chunkCount;
    private readonly byte[] _buffer;
    private int _next;
    private long _reportedAt = Environment.TickCount64;

    public ResyncCopy(string replicaId, IReplicaStream sender, long volumeSize, int chunkBytes, byte[]? digest)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 512);
        _chunkCount = ImageDigest.ChunkCount(volumeSize, chunkBytes);
        if (digest is not null && digest.Length != _chunkCount * 16)
            throw new ArgumentException($"the digest of {replicaId} has {digest.Length} B, {_chunkCount} chunks of {chunkBytes} B need {_chunkCount * 16}", nameof(digest));
        ReplicaId = replicaId;
        Sender = sender;
        ChunkBytes = chunkBytes;
        _volumeSize = volumeSize;
        _digest = digest;
        _buffer = new byte[chunkBytes];
    }

    public string ReplicaId { get; }

    /// <summary>The coordinator's id of this resync attempt, echoed in every report of it.</summary>
    public long Attempt { get; init; }
    public IReplicaStream Sender { get; }
    public int ChunkBytes { get; }
    public long ScannedBytes { get; private set; }
    public long CopiedBytes { get; private set; }
    public bool Done => _next >= _chunkCount;

    public ResyncProgress Progress => new(ReplicaId, ScannedBytes, _volumeSize, CopiedBytes, Done);

    /// <summary>Of the volume, the share scanned so far, in percent.</summary>
    public double ScannedPercent => 100.0 * ScannedBytes / _volumeSize;

    /// <summary>
    /// Why the primary refuses the joiner's <see cref="AddSecondary"/> (its chunks do not fit the
    /// volume's blocks, or its digest does not fit its chunks), or null if it can be copied to.
    /// </summary>
    public static string? Refusal(AddSecondary m, VolumeSpec volume)
    {
        if (m.ChunkBytes < volume.BlockSize || m.ChunkBytes % volume.BlockSize != 0)
            return $"chunks of {m.ChunkBytes} B are not a multiple of the block size {volume.BlockSize} B";
        var expected = (long)ImageDigest.ChunkCount(volume.SizeBytes, m.ChunkBytes) * 16;
        return m.Digest is not null && m.Digest.Length != expected
            ? $"its digest has {m.Digest.Length} B, chunks of {m.ChunkBytes} B need {expected} B"
            : null;
    }

    /// <summary>
    /// One turn: scans up to <paramref name="scanBudget"/> bytes, handing each differing chunk to
    /// <paramref name="send"/>, which says whether it went out within the turn (false: it waits on
    /// the joiner's full window, and the turn ends there).
    /// </summary>
    public CopyTurn Turn(VolumeImage image, long scanBudget, Func<long, byte[], bool> send)
    {
        while (scanBudget > 0 && !Done)
        {
            var scannedBefore = ScannedBytes;
            var chunk = NextDiffering(image, scanBudget);
            scanBudget -= ScannedBytes - scannedBefore;
            if (chunk is not { } c)
                break;
            if (!send(c.Offset, c.Data))
                return CopyTurn.WaitingForWindow;
        }
        return Done ? CopyTurn.Scanned : CopyTurn.MoreToScan;
    }

    /// <summary>True if progress is to be reported now (<paramref name="force"/>, or <see cref="ProgressInterval"/> since the last report).</summary>
    public bool ProgressDue(bool force)
    {
        var now = Environment.TickCount64;
        if (!force && now - _reportedAt < (long)ProgressInterval.TotalMilliseconds)
            return false;
        _reportedAt = now;
        return true;
    }

    /// <summary>
    /// Scans on from where the last call stopped, at most <paramref name="scanBudget"/> bytes, and
    /// returns the first chunk that differs (its offset and a copy of its bytes, which the caller
    /// may keep until sent), or null if none did within the budget (then <see cref="Done"/> may be true).
    /// </summary>
    public (long Offset, byte[] Data)? NextDiffering(VolumeImage image, long scanBudget)
    {
        long scanned = 0;
        while (_next < _chunkCount && scanned < scanBudget)
        {
            var index = _next++;
            var offset = (long)index * ChunkBytes;
            var length = ImageDigest.ChunkLength(_volumeSize, ChunkBytes, index);
            var chunk = _buffer.AsSpan(0, length);
            image.Read(offset, chunk);
            scanned += length;
            ScannedBytes += length;
            var hash = ImageDigest.Hash(chunk);
            var theirs = _digest is null ? ImageDigest.Hash(Zeros(length)) : BinaryPrimitives.ReadUInt128LittleEndian(_digest.AsSpan(index * 16, 16));
            if (hash == theirs)
                continue;
            CopiedBytes += length;
            return (offset, chunk.ToArray());
        }
        return null;
    }

    private byte[]? _zeros;

    private ReadOnlySpan<byte> Zeros(int length) => (_zeros ??= new byte[ChunkBytes]).AsSpan(0, length);
}
