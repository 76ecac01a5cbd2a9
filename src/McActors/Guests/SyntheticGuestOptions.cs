namespace McActors.Guests;

/// <summary>
/// How the built-in synthetic guest runs: its workload (seed, volume geometry), how many writes it
/// keeps outstanding, and optionally after how many writes it stops issuing (demos, tests).
/// </summary>
public sealed record SyntheticGuestOptions(
    long Seed,
    long VolumeSizeBytes,
    int BlockSize = SyntheticWorkload.DefaultBlockSize,
    int MaxOutstanding = 8,
    long? WriteLimit = null)
{
    public void Validate()
    {
        GuestState.ValidateGeometry(VolumeSizeBytes, BlockSize);
        if (MaxOutstanding < 1)
            throw new ArgumentException($"max outstanding writes {MaxOutstanding} must be at least 1");
        if (WriteLimit < 0)
            throw new ArgumentException($"write limit {WriteLimit} must not be negative");
    }
}
