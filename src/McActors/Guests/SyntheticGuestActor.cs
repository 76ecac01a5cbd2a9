using Akka.Actor;

namespace McActors.Guests;

/// <summary>
/// The built-in synthetic guest: drives a <see cref="SyntheticWorkload"/> against the disk, keeping
/// <see cref="SyntheticGuestOptions.MaxOutstanding"/> writes in flight while running. The guest
/// protocol is <see cref="GuestActorBase"/>'s; the state blob is the workload's. A failed write
/// stops it (the workload already counts that write, so its state no longer describes the disk).
/// </summary>
public sealed class SyntheticGuestActor : GuestActorBase
{
    private readonly SyntheticGuestOptions _options;
    private SyntheticWorkload _workload;

    public SyntheticGuestActor(GuestContext guest, SyntheticGuestOptions options) : base(guest)
    {
        options.Validate();
        _options = options;
        _workload = new SyntheticWorkload(options.Seed, options.VolumeSizeBytes, options.BlockSize);
    }

    /// <summary>The synthetic guest sized to the context's volume, with the node's guest settings (seed, window, limit).</summary>
    public static Props Props(GuestContext guest) => Props(guest, new SyntheticGuestOptions(guest.Settings.GuestSeed,
        guest.Volume.SizeBytes, guest.Volume.BlockSize, guest.Settings.GuestMaxOutstanding, guest.Settings.GuestWriteLimit));

    public static Props Props(GuestContext guest, SyntheticGuestOptions options) =>
        Akka.Actor.Props.Create(() => new SyntheticGuestActor(guest, options));

    protected override (long Writes, long Bytes) Counters => (_workload.WriteCount, _workload.BytesWritten);

    protected override byte[] CaptureState(long epoch) => _workload.Capture(epoch);

    protected override void RestoreState(long epoch, byte[] state)
    {
        var restored = SyntheticWorkload.Restore(state);
        if (restored.VolumeSizeBytes != _options.VolumeSizeBytes)
            throw new GuestStateRefusedException($"state is for a volume of {restored.VolumeSizeBytes} B, the disk has {_options.VolumeSizeBytes} B");
        _workload = restored;
    }

    protected override void OnResumed(long epoch) => IssueWrites();

    protected override void OnWriteCompleted(long tag, long epoch) => IssueWrites();

    private void IssueWrites()
    {
        while (State == GuestRunState.Running && OutstandingWrites < _options.MaxOutstanding && !(_workload.WriteCount >= _options.WriteLimit))
        {
            var (write, data) = _workload.NextWrite();
            Write(write.Offset, data);
        }
    }
}
