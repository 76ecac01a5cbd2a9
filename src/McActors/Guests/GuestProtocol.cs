namespace McActors.Guests;

// The guest protocol, spoken by the primary to any guest actor (built-in or your own). A guest
// starts paused in epoch 0 and is given a disk actor and a window N at construction.
//  1. ResumeGuest(e) → GuestResumed(e): issue writes, all in epoch e, as GuestWrite(offset, data, tag)
//     to the disk, at most N unanswered; the disk answers GuestWriteCompleted/GuestWriteFailed(tag).
//  2. PauseGuest(e) → GuestPaused(e): stop issuing; reply only when every write issued was answered.
//  3. CaptureGuestState(e) → GuestStateCaptured(e, blob), only while paused: bytes you can rebuild
//     yourself from exactly as you are now. The blob becomes checkpoint e's guest state.
//  4. RestoreGuestState(e, blob) → GuestRestored(e) after a failover: replace your state, stay paused.
//  5. A command you cannot obey now (capture while running, a corrupt blob) gets
//     GuestCommandRefused(command, reason); the primary treats it as a guest failure.
// These messages stay on the primary's node; the blob reaches secondaries through the data plane.

/// <summary>Primary → guest: stop issuing writes; answer <see cref="GuestPaused"/> once none is outstanding.</summary>
public sealed record PauseGuest(long Epoch);

/// <summary>Guest → primary: paused, and every write issued before was acknowledged.</summary>
public sealed record GuestPaused(long Epoch);

/// <summary>Primary → paused guest: capture your state as checkpoint <see cref="Epoch"/>'s blob.</summary>
public sealed record CaptureGuestState(long Epoch);

/// <summary>Guest → primary: the state blob of checkpoint <see cref="Epoch"/> (owned by the receiver from now on).</summary>
public sealed record GuestStateCaptured(long Epoch, byte[] State);

/// <summary>Primary → paused or stopped guest: become the guest described by <see cref="State"/> (checkpoint <see cref="Epoch"/>), stay paused.</summary>
public sealed record RestoreGuestState(long Epoch, byte[] State);

/// <summary>Guest → primary: restored to checkpoint <see cref="Epoch"/>; paused until resumed.</summary>
public sealed record GuestRestored(long Epoch);

/// <summary>Primary → paused guest: continue; every write from now on belongs to epoch <see cref="Epoch"/>.</summary>
public sealed record ResumeGuest(long Epoch);

/// <summary>Guest → primary: running in epoch <see cref="Epoch"/>.</summary>
public sealed record GuestResumed(long Epoch);

/// <summary>Guest → primary: the command cannot be obeyed in the guest's current state; nothing changed.</summary>
public sealed record GuestCommandRefused(object Command, string Reason);

/// <summary>Guest → disk: write <see cref="Data"/> at <see cref="Offset"/>; the reply carries <see cref="Tag"/>. The disk must not change <see cref="Data"/>.</summary>
public sealed record GuestWrite(long Offset, byte[] Data, long Tag);

/// <summary>Disk → guest: the write tagged <see cref="Tag"/> is applied (the guest may drop its buffer).</summary>
public sealed record GuestWriteCompleted(long Tag);

/// <summary>Disk → guest: the write tagged <see cref="Tag"/> was refused or failed.</summary>
public sealed record GuestWriteFailed(long Tag, string Reason);

/// <summary>Anyone → guest: answer with <see cref="GuestStatus"/>.</summary>
public sealed record GetGuestStatus
{
    public static readonly GetGuestStatus Instance = new();
}

/// <summary>
/// A guest's counters. <see cref="Writes"/> and <see cref="Bytes"/> count writes issued
/// (<see cref="Outstanding"/> of them not answered yet). <see cref="State"/> is Running, Pausing,
/// Paused or Stopped; <see cref="Failure"/> says why a stopped guest stopped.
/// </summary>
public sealed record GuestStatus(long Writes, long Bytes, long Epoch, int Outstanding, bool Paused, string State, string? Failure);

/// <summary>
/// Guest → disk: read <see cref="Length"/> bytes at <see cref="Offset"/> from the live image (a guest
/// that serves reads, like the NBD export); answered with <see cref="GuestReadCompleted"/> or
/// <see cref="GuestReadFailed"/> carrying <see cref="Tag"/>. A read sees every write already answered.
/// </summary>
public sealed record GuestRead(long Offset, int Length, long Tag);

/// <summary>Disk → guest: the bytes of the read tagged <see cref="Tag"/> (owned by the guest from now on).</summary>
public sealed record GuestReadCompleted(long Tag, byte[] Data);

/// <summary>Disk → guest: the read tagged <see cref="Tag"/> was refused (out of range, misaligned) or failed.</summary>
public sealed record GuestReadFailed(long Tag, string Reason);
