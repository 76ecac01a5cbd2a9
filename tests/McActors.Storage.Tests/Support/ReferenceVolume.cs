namespace McActors.Storage.Tests.Support;

/// <summary>
/// The in-memory model a store is checked against: the current image, and the image at every
/// checkpoint that can still be rolled back to.
/// </summary>
public sealed class ReferenceVolume(int sizeBytes)
{
    private readonly Dictionary<long, byte[]> _checkpoints = new() { [0] = new byte[sizeBytes] };

    public byte[] Current { get; private set; } = new byte[sizeBytes];
    public long Epoch { get; private set; } = 1;
    public long Prepared { get; private set; }
    public long Committed { get; private set; }

    public void Write(long offset, ReadOnlySpan<byte> data) => data.CopyTo(Current.AsSpan((int)offset));

    /// <summary>Closes the current epoch: its end is checkpoint <see cref="Epoch"/>.</summary>
    public void CloseEpoch()
    {
        _checkpoints[Epoch] = (byte[])Current.Clone();
        Epoch++;
    }

    public void Prepare(long epoch) => Prepared = Math.Max(Prepared, epoch);

    public void Commit(long epoch)
    {
        Committed = Math.Max(Committed, epoch);
        foreach (var old in _checkpoints.Keys.Where(k => k < Committed).ToList())
            _checkpoints.Remove(old);
    }

    public byte[] Checkpoint(long epoch) => _checkpoints[epoch];

    public void RolledBackTo(long checkpoint)
    {
        Current = (byte[])_checkpoints[checkpoint].Clone();
        foreach (var later in _checkpoints.Keys.Where(k => k > checkpoint).ToList())
            _checkpoints.Remove(later);
        Epoch = checkpoint + 1;
        Prepared = checkpoint;
    }
}
