using McActors.Testing.Xunit.Guests;
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
        _guest = Sys.ActorOf(NbdGuestActor.Props(TestGuestContext.Create(Sys, _disk.Ref, 1 << 20), _slot, 4096));
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
        _disk.Reply(_disk.ExpectMsg<ReleaseWhenCommitted>().Output); // committed at once, as far as this test goes
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
    public async Task An_applied_write_is_answered_only_when_the_primary_releases_it_at_commit_while_reads_are_answered_at_once()
    {
        var write = _export.WriteAsync(0, new byte[512], fua: false).AsTask();
        _disk.Reply(new GuestWriteCompleted(_disk.ExpectMsg<GuestWrite>().Tag));
        var release = _disk.ExpectMsg<ReleaseWhenCommitted>(); // sent only after the write was applied
        Assert.Equal(new NbdEpochCommitted(1), release.Output);

        // Not committed yet: a read of it is answered, the write is not.
        var read = _export.ReadAsync(0, 512).AsTask();
        var r = _disk.ExpectMsg<GuestRead>();
        _disk.Reply(new GuestReadCompleted(r.Tag, new byte[512]));
        await read.WaitAsync(Patience);
        _disk.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Assert.False(write.IsCompleted);

        _guest.Tell(release.Output, _disk.Ref); // the primary sends the output back when the checkpoint commits
        await write.WaitAsync(Patience);

        // A FUA write is no different; a FLUSH finds every completed write committed and is answered at once.
        var fua = _export.WriteAsync(512, new byte[512], fua: true).AsTask();
        _disk.Reply(new GuestWriteCompleted(_disk.ExpectMsg<GuestWrite>().Tag));
        var held = _disk.ExpectMsg<ReleaseWhenCommitted>();
        await _export.FlushAsync().AsTask().WaitAsync(Patience);
        Assert.False(fua.IsCompleted);
        _disk.Reply(held.Output);
        await fua.WaitAsync(Patience);
    }

    [Fact]
    public async Task The_writes_of_one_epoch_share_one_release_and_a_commit_releases_every_epoch_it_covers()
    {
        var epoch1 = Enumerable.Range(0, 5).Select(i => _export.WriteAsync(i * 512, new byte[512], fua: i % 2 == 0).AsTask()).ToList();
        var issued = Enumerable.Range(0, 5).Select(_ => _disk.ExpectMsg<GuestWrite>()).ToList();
        foreach (var w in issued)
            _guest.Tell(new GuestWriteCompleted(w.Tag), _disk.Ref);
        var release1 = _disk.ExpectMsg<ReleaseWhenCommitted>();
        Assert.Equal(new NbdEpochCommitted(1), release1.Output);
        _disk.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // one release for the epoch, not one per write

        _guest.Tell(new PauseGuest(1), _disk.Ref);
        _disk.ExpectMsg<GuestPaused>();
        _guest.Tell(new ResumeGuest(2), _disk.Ref);
        _disk.ExpectMsg<GuestResumed>();
        var epoch2 = _export.WriteAsync(8192, new byte[512], fua: false).AsTask();
        _disk.Reply(new GuestWriteCompleted(_disk.ExpectMsg<GuestWrite>().Tag));
        Assert.Equal(new NbdEpochCommitted(2), _disk.ExpectMsg<ReleaseWhenCommitted>().Output);
        Assert.All(epoch1.Append(epoch2), t => Assert.False(t.IsCompleted));

        // The primary may tie epoch 1's release to a later checkpoint; its commit covers both epochs.
        _guest.Tell(new NbdEpochCommitted(2), _disk.Ref);
        await Task.WhenAll(epoch1.Append(epoch2)).WaitAsync(Patience);
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
        var release = _disk.ExpectMsg<ReleaseWhenCommitted>();
        _disk.ExpectMsg<GuestPaused>(p => Assert.Equal(1, p.Epoch)); // applied is enough to pause; the reply waits for the commit
        _guest.Tell(release.Output, _disk.Ref);
        await first.WaitAsync(Patience);

        _guest.Tell(new CaptureGuestState(1), _disk.Ref);
        var blob = _disk.ExpectMsg<GuestStateCaptured>().State;
        var state = OpaqueGuestState.Parse(blob);
        Assert.Equal((NbdGuestActor.Kind, 1L), (state.Kind, state.Epoch));
        Assert.Equal(1, GuestStateBlob.EpochOf(blob));

        _guest.Tell(new ResumeGuest(2), _disk.Ref);
        _disk.ExpectMsg<GuestResumed>(); // then the held write, issued in epoch 2
        var w2 = _disk.ExpectMsg<GuestWrite>();
        Assert.Equal(512, w2.Offset);
        _disk.Reply(new GuestWriteCompleted(w2.Tag));
        _disk.Reply(_disk.ExpectMsg<ReleaseWhenCommitted>().Output);
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
        var write = _export.WriteAsync(0, new byte[512], fua: false).AsTask();
        _disk.Reply(new GuestWriteCompleted(_disk.ExpectMsg<GuestWrite>().Tag));
        _disk.ExpectMsg<ReleaseWhenCommitted>();
        var unapplied = _export.WriteAsync(512, new byte[512], fua: false).AsTask();
        _disk.ExpectMsg<GuestWrite>();
        Watch(_guest);
        Sys.Stop(_guest);
        ExpectTerminated(_guest);
        // Applied but never committed, and never applied: neither is answered with success.
        Assert.Equal(NbdProtocol.EShutdown, (await Assert.ThrowsAsync<NbdErrorException>(() => write.WaitAsync(Patience))).Error);
        Assert.Equal(NbdProtocol.EShutdown, (await Assert.ThrowsAsync<NbdErrorException>(() => unapplied.WaitAsync(Patience))).Error);
        Assert.True(_export.Closed.IsCancellationRequested);
        Assert.Null(_slot.Current);
        Assert.Null(_slot.Find("", out _, out _));
    }
}
