using Akka.Actor;
using Akka.TestKit.Xunit2;
using McActors.Guests;
using McActors.Replication;

namespace McActors.Nbd.Tests;

/// <summary>The NBD guest driven through its export, with a TestProbe as the primary (its disk).</summary>
public sealed class NbdGuestActorTests : TestKit
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);
    private readonly NbdExportSlot _slot = new("volume", "r1");
    private readonly Akka.TestKit.TestProbe _disk;
    private readonly IActorRef _guest;
    private readonly INbdExport _export;

    public NbdGuestActorTests()
    {
        _disk = CreateTestProbe();
        _guest = Sys.ActorOf(NbdGuestActor.Props(_disk.Ref, _slot, 1 << 20, 4096));
        AwaitCondition(() => _slot.Current is not null, Patience);
        _export = _slot.Current!;
        _guest.Tell(new ResumeGuest(1), _disk.Ref);
        _disk.ExpectMsg<GuestResumed>();
    }

    [Fact]
    public async Task Writes_and_reads_become_guest_writes_and_reads_of_the_primary()
    {
        var data = new byte[512];
        var write = _export.WriteAsync(4096, data, fua: false).AsTask();
        var w = _disk.ExpectMsg<GuestWrite>();
        Assert.Equal((4096L, data), (w.Offset, w.Data));
        Assert.False(write.IsCompleted);
        _disk.Reply(new GuestWriteCompleted(w.Tag));
        await write.WaitAsync(Patience);

        var read = _export.ReadAsync(0, 1024).AsTask();
        var r = _disk.ExpectMsg<GuestRead>();
        Assert.Equal((0L, 1024), (r.Offset, r.Length));
        _disk.Reply(new GuestReadCompleted(r.Tag, new byte[1024]));
        Assert.Equal(1024, (await read.WaitAsync(Patience)).Length);

        var failed = _export.ReadAsync(0, 512).AsTask();
        _disk.Reply(new GuestReadFailed(_disk.ExpectMsg<GuestRead>().Tag, "I/O error"));
        Assert.Equal(NbdProtocol.EIo, (await Assert.ThrowsAsync<NbdErrorException>(() => failed.WaitAsync(Patience))).Error);
    }

    [Fact]
    public async Task Flush_and_fua_writes_complete_only_when_the_primary_releases_them_at_commit()
    {
        var flush = _export.FlushAsync().AsTask();
        var release = _disk.ExpectMsg<ReleaseWhenCommitted>();
        Assert.False(flush.IsCompleted);
        _disk.Reply(release.Output); // the primary sends the output back when the checkpoint commits
        await flush.WaitAsync(Patience);

        var fua = _export.WriteAsync(0, new byte[512], fua: true).AsTask();
        _disk.Reply(new GuestWriteCompleted(_disk.ExpectMsg<GuestWrite>().Tag));
        var held = _disk.ExpectMsg<ReleaseWhenCommitted>(); // sent only after the write was applied
        Assert.False(fua.IsCompleted);
        _disk.Reply(held.Output);
        await fua.WaitAsync(Patience);
    }

    [Fact]
    public async Task Pause_waits_for_outstanding_writes_and_holds_new_ones_until_resumed()
    {
        var first = _export.WriteAsync(0, new byte[512], fua: false).AsTask();
        var w1 = _disk.ExpectMsg<GuestWrite>();
        _guest.Tell(new PauseGuest(1), _disk.Ref);
        var second = _export.WriteAsync(512, new byte[512], fua: false).AsTask();
        _disk.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // no GuestPaused yet, and the new write is held
        _guest.Tell(new GuestWriteCompleted(w1.Tag), _disk.Ref);
        _disk.ExpectMsg<GuestPaused>(p => Assert.Equal(1, p.Epoch));
        await first.WaitAsync(Patience);

        _guest.Tell(new CaptureGuestState(1), _disk.Ref);
        var blob = _disk.ExpectMsg<GuestStateCaptured>().State;
        var state = OpaqueGuestState.Parse(blob);
        Assert.Equal((NbdGuestActor.Kind, 1L), (state.Kind, state.Epoch));
        Assert.Equal(1, GuestStateBlob.EpochOf(blob));

        _guest.Tell(new ResumeGuest(2), _disk.Ref);
        var w2 = _disk.ExpectMsg<GuestWrite>();
        Assert.Equal(512, w2.Offset);
        _disk.ExpectMsg<GuestResumed>();
        _disk.Reply(new GuestWriteCompleted(w2.Tag));
        await second.WaitAsync(Patience);
    }

    [Fact]
    public void Capture_while_running_is_refused_and_a_corrupt_blob_is_not_restored()
    {
        _guest.Tell(new CaptureGuestState(1), _disk.Ref);
        _disk.ExpectMsg<GuestCommandRefused>();
        _guest.Tell(new PauseGuest(1), _disk.Ref);
        _disk.ExpectMsg<GuestPaused>();
        _guest.Tell(new CaptureGuestState(1), _disk.Ref);
        var blob = _disk.ExpectMsg<GuestStateCaptured>().State;
        blob[^1] ^= 0xff;
        _guest.Tell(new RestoreGuestState(1, blob), _disk.Ref);
        _disk.ExpectMsg<GuestCommandRefused>();
        Assert.Throws<GuestStateChecksumException>(() => GuestStateBlob.EpochOf(blob));
        blob[^1] ^= 0xff;
        _guest.Tell(new RestoreGuestState(1, blob), _disk.Ref);
        _disk.ExpectMsg<GuestRestored>();
    }

    [Fact]
    public async Task A_stopped_guest_closes_its_export_and_fails_what_waits()
    {
        var flush = _export.FlushAsync().AsTask();
        _disk.ExpectMsg<ReleaseWhenCommitted>();
        Watch(_guest);
        Sys.Stop(_guest);
        ExpectTerminated(_guest);
        Assert.Equal(NbdProtocol.EShutdown, (await Assert.ThrowsAsync<NbdErrorException>(() => flush.WaitAsync(Patience))).Error);
        Assert.True(_export.Closed.IsCancellationRequested);
        Assert.Null(_slot.Current);
        Assert.Null(_slot.Find("", out _, out _));
    }
}
