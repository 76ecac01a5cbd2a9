using System.Buffers.Binary;
using McActors.DataPlane;
using McActors.Protocol;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// The primary's side of one resync: a scan of its image, chunk by chunk in order, that yields
/// the chunks whose hash differs from the joiner's digest (every non-zero chunk when the joiner
/// has no image). The primary runs a step at a time inside its actor, between guest writes, so a
/// chunk is read and sent before any later write to it is streamed. Not thread-safe.
/// </summary>
public sealed class ResyncCopy
{
    private readonly byte[]? _digest;
    private readonly long _volumeSize;
    private readonly int _chunkCount;
    private readonly byte[] _buffer;
    private int _next;

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
