using McActors.Testing.Xunit.Guests;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using McActors.Guests;
using McActors.Storage.Volume;
using Xunit.Abstractions;

namespace McActors.Tests.Guests;

/// <summary>
/// The synthetic guest actor through the guest protocol, with a probe as its disk: the write
/// window, pause only after every write was answered, capture/restore/resume continuing the
/// workload exactly, and a failed write stopping it until a restore.
/// </summary>
public sealed class SyntheticGuestActorTests : TestKit
{
    private readonly ITestOutputHelper _output;

    public SyntheticGuestActorTests(ITestOutputHelper output) : base(output: output) => _output = output;

    private const long Volume = 4 << 20;
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(200);

    private static SyntheticGuestOptions Options(long seed = 21, int window = 4, long? limit = null) =>
        new(seed, Volume, MaxOutstanding: window, WriteLimit: limit);

    private IActorRef Start(TestProbe disk, SyntheticGuestOptions options, long epoch = 1)
    {
        var guest = Sys.ActorOf(SyntheticGuestActor.Props(TestGuestContext.Create(Sys, disk.Ref, Volume), options));
        guest.Tell(new ResumeGuest(epoch));
        Assert.Equal(epoch, ExpectMsg<GuestResumed>().Epoch);
        return guest;
    }

    private static void Ack(IActorRef guest, TestProbe disk, GuestWrite write) =>
        guest.Tell(new GuestWriteCompleted(write.Tag), disk.Ref);

    private GuestStatus Status(IActorRef guest)
    {
        guest.Tell(GetGuestStatus.Instance);
        return ExpectMsg<GuestStatus>();
    }

    /// <summary>Checks that the disk got exactly the next write of the reference workload.</summary>
    private static GuestWrite ExpectWrite(TestProbe disk, SyntheticWorkload reference)
    {
        var w = disk.ExpectMsg<GuestWrite>();
        var (expected, data) = reference.NextWrite();
        Assert.Equal(expected.Offset, w.Offset);
        Assert.True(data.AsSpan().SequenceEqual(w.Data), $"data of write {expected.Index} differs from the reference workload");
        return w;
    }

    /// <summary>Pauses a guest whose outstanding writes are <paramref name="outstanding"/>, answering them all.</summary>
    private void PauseAnswering(IActorRef guest, TestProbe disk, IEnumerable<GuestWrite> outstanding, long epoch)
    {
        guest.Tell(new PauseGuest(epoch));
        foreach (var w in outstanding)
            Ack(guest, disk, w);
        Assert.Equal(epoch, ExpectMsg<GuestPaused>().Epoch);
    }

    [Fact]
    public void A_new_guest_is_paused_and_issues_nothing()
    {
        var disk = CreateTestProbe();
        var guest = Sys.ActorOf(SyntheticGuestActor.Props(TestGuestContext.Create(Sys, disk.Ref, Volume), Options()));
        var status = Status(guest);
        Assert.True(status.Paused);
        Assert.Equal(0, status.Writes);
        Assert.Equal(0, status.Epoch);
        disk.ExpectNoMsg(Quiet);
    }

    [Fact]
    public void A_running_guest_keeps_its_window_of_outstanding_writes_full()
    {
        var disk = CreateTestProbe();
        var reference = new SyntheticWorkload(21, Volume);
        var guest = Start(disk, Options(window: 4));
        var inFlight = new Queue<GuestWrite>();
        for (var i = 0; i < 4; i++)
            inFlight.Enqueue(ExpectWrite(disk, reference));
        disk.ExpectNoMsg(Quiet);
        for (var i = 0; i < 20; i++)
        {
            Ack(guest, disk, inFlight.Dequeue());
            inFlight.Enqueue(ExpectWrite(disk, reference)); // exactly one more per answer
        }
        var status = Status(guest);
        Assert.Equal(24, status.Writes);
        Assert.Equal(reference.BytesWritten, status.Bytes);
        Assert.Equal(4, status.Outstanding);
        Assert.Equal("Running", status.State);
        Assert.Equal(inFlight.Count, inFlight.Select(w => w.Tag).Distinct().Count());
    }

    [Fact]
    public void Pause_answers_only_after_every_outstanding_write_was_answered()
    {
        var disk = CreateTestProbe();
        var guest = Start(disk, Options(window: 3));
        var writes = disk.ReceiveN(3).Cast<GuestWrite>().ToList();

        guest.Tell(new PauseGuest(1));
        ExpectNoMsg(Quiet);
        var pausing = Status(guest);
        Assert.Equal("Pausing", pausing.State);
        Assert.Equal(3, pausing.Outstanding);
        Assert.False(pausing.Paused);

        Ack(guest, disk, writes[2]);
        Ack(guest, disk, writes[0]);
        Assert.Equal(1, Status(guest).Outstanding);
        ExpectNoMsg(Quiet);
        disk.ExpectNoMsg(Quiet); // no new writes while pausing

        Ack(guest, disk, writes[1]);
        Assert.Equal(1, ExpectMsg<GuestPaused>().Epoch);
        disk.ExpectNoMsg(Quiet);
        var paused = Status(guest);
        Assert.True(paused.Paused);
        Assert.Equal(0, paused.Outstanding);
        Assert.Equal(3, paused.Writes);

        // Pausing a paused guest answers at once.
        guest.Tell(new PauseGuest(1));
        ExpectMsg<GuestPaused>();
    }

    [Fact]
    public void Two_pause_requests_while_draining_are_both_answered()
    {
        var disk = CreateTestProbe();
        var other = CreateTestProbe();
        var guest = Start(disk, Options(window: 2));
        var writes = disk.ReceiveN(2).Cast<GuestWrite>().ToList();
        guest.Tell(new PauseGuest(1));
        guest.Tell(new PauseGuest(1), other.Ref);
        foreach (var w in writes)
            Ack(guest, disk, w);
        ExpectMsg<GuestPaused>();
        other.ExpectMsg<GuestPaused>();
    }

    [Fact]
    public void Capture_is_refused_while_running_and_matches_the_workload_when_paused()
    {
        var disk = CreateTestProbe();
        var reference = new SyntheticWorkload(21, Volume);
        var guest = Start(disk, Options(window: 2));
        var writes = new List<GuestWrite> { ExpectWrite(disk, reference), ExpectWrite(disk, reference) };

        guest.Tell(new CaptureGuestState(1));
        var refused = ExpectMsg<GuestCommandRefused>();
        Assert.IsType<CaptureGuestState>(refused.Command);
        Assert.Contains("Running", refused.Reason);

        PauseAnswering(guest, disk, writes, 1);
        guest.Tell(new CaptureGuestState(1));
        var captured = ExpectMsg<GuestStateCaptured>();
        Assert.Equal(1, captured.Epoch);
        Assert.Equal(reference.Capture(1), captured.State);
        Assert.Equal(1, GuestState.Parse(captured.State).Epoch);
    }

    [Fact]
    public void Resume_continues_the_workload_in_the_new_epoch()
    {
        var disk = CreateTestProbe();
        var reference = new SyntheticWorkload(21, Volume);
        var guest = Start(disk, Options(window: 2));
        PauseAnswering(guest, disk, [ExpectWrite(disk, reference), ExpectWrite(disk, reference)], 1);

        guest.Tell(new ResumeGuest(2));
        ExpectMsg<GuestResumed>(m => m.Epoch == 2);
        var next = new List<GuestWrite> { ExpectWrite(disk, reference), ExpectWrite(disk, reference) };
        Assert.Equal(2, Status(guest).Epoch);
        PauseAnswering(guest, disk, next, 2);
        guest.Tell(new CaptureGuestState(2));
        Assert.Equal(reference.Capture(2), ExpectMsg<GuestStateCaptured>().State);
    }

    [Fact]
    public void A_guest_restored_elsewhere_continues_exactly_where_the_captured_one_was()
    {
        Seeds.Run(3, seed =>
        {
            var reference = new SyntheticWorkload(seed, Volume);
            var diskA = CreateTestProbe();
            var a = Start(diskA, Options(seed, window: 3));
            var inFlight = new Queue<GuestWrite>();
            for (var i = 0; i < 3; i++)
                inFlight.Enqueue(ExpectWrite(diskA, reference));
            for (var i = (seed & 0x7fffffff) % 25; i > 0; i--)
            {
                Ack(a, diskA, inFlight.Dequeue());
                inFlight.Enqueue(ExpectWrite(diskA, reference));
            }
            PauseAnswering(a, diskA, inFlight, 4);
            a.Tell(new CaptureGuestState(4));
            var blob = ExpectMsg<GuestStateCaptured>().State;

            // The new primary's guest: another seed in its options, replaced by the restored state.
            var diskB = CreateTestProbe();
            var b = Sys.ActorOf(SyntheticGuestActor.Props(TestGuestContext.Create(Sys, diskB.Ref, Volume), Options(seed + 1, window: 3)));
            b.Tell(new RestoreGuestState(4, blob));
            Assert.Equal(4, ExpectMsg<GuestRestored>().Epoch);
            var restored = Status(b);
            Assert.True(restored.Paused);
            Assert.Equal(4, restored.Epoch);
            Assert.Equal(reference.WriteCount, restored.Writes);
            diskB.ExpectNoMsg(TimeSpan.FromMilliseconds(50)); // paused until resumed

            b.Tell(new ResumeGuest(5));
            ExpectMsg<GuestResumed>();
            var next = new List<GuestWrite>();
            for (var i = 0; i < 3; i++)
                next.Add(ExpectWrite(diskB, reference));
            PauseAnswering(b, diskB, next, 5);
            b.Tell(new CaptureGuestState(5));
            Assert.Equal(reference.Capture(5), ExpectMsg<GuestStateCaptured>().State);
            Sys.Stop(a);
            Sys.Stop(b);
        }, _output);
    }

    [Fact]
    public void A_corrupt_blob_stops_the_guest_until_a_good_restore_and_a_restore_while_running_is_refused()
    {
        var disk = CreateTestProbe();
        var guest = Sys.ActorOf(SyntheticGuestActor.Props(TestGuestContext.Create(Sys, disk.Ref, Volume), Options()));
        var blob = new SyntheticWorkload(21, Volume).Capture(0);
        blob[^3] ^= 0x10;
        guest.Tell(new RestoreGuestState(3, blob));
        Assert.Contains("checksum", ExpectMsg<GuestCommandRefused>().Reason);

        var wrongSize = new SyntheticWorkload(21, Volume * 2).Capture(0);
        guest.Tell(new RestoreGuestState(3, wrongSize));
        Assert.Contains("volume", ExpectMsg<GuestCommandRefused>().Reason);
        Assert.Equal((0L, "Stopped"), (Status(guest).Epoch, Status(guest).State));
        // It must not run as a fresh guest over checkpoint 3's disk.
        guest.Tell(new ResumeGuest(4));
        Assert.IsType<ResumeGuest>(ExpectMsg<GuestCommandRefused>().Command);

        guest.Tell(new RestoreGuestState(0, new SyntheticWorkload(21, Volume).Capture(0)));
        ExpectMsg<GuestRestored>();
        guest.Tell(new ResumeGuest(1));
        ExpectMsg<GuestResumed>();
        disk.ReceiveN(4);
        guest.Tell(new RestoreGuestState(3, new SyntheticWorkload(21, Volume).Capture(0)));
        Assert.IsType<RestoreGuestState>(ExpectMsg<GuestCommandRefused>().Command);
        Assert.Equal("Running", Status(guest).State);
    }

    [Fact]
    public void A_failed_write_stops_the_guest_until_a_restore()
    {
        var disk = CreateTestProbe();
        var reference = new SyntheticWorkload(21, Volume);
        var guest = Start(disk, Options(window: 2));
        var first = new List<GuestWrite> { ExpectWrite(disk, reference), ExpectWrite(disk, reference) };
        PauseAnswering(guest, disk, first, 1);
        guest.Tell(new CaptureGuestState(1));
        var checkpoint = ExpectMsg<GuestStateCaptured>().State;
        var afterCheckpoint = SyntheticWorkload.Restore(checkpoint);

        guest.Tell(new ResumeGuest(2));
        ExpectMsg<GuestResumed>();
        var w1 = ExpectWrite(disk, reference);
        var w2 = ExpectWrite(disk, reference);
        guest.Tell(new PauseGuest(2));
        guest.Tell(new GuestWriteFailed(w1.Tag, "fenced: stale generation"), disk.Ref);
        // The pause that was waiting is refused: the guest's state no longer describes its disk.
        var refusedPause = ExpectMsg<GuestCommandRefused>();
        Assert.IsType<PauseGuest>(refusedPause.Command);
        Assert.Contains("fenced", refusedPause.Reason);
        var stopped = Status(guest);
        Assert.Equal("Stopped", stopped.State);
        Assert.Contains("fenced", stopped.Failure);

        guest.Tell(new PauseGuest(2));
        ExpectMsg<GuestCommandRefused>();
        guest.Tell(new CaptureGuestState(2));
        ExpectMsg<GuestCommandRefused>();
        guest.Tell(new ResumeGuest(3));
        ExpectMsg<GuestCommandRefused>();
        disk.ExpectNoMsg(Quiet);

        // Failover: back to checkpoint 1, resumed in epoch 2 of the new generation.
        guest.Tell(new RestoreGuestState(1, checkpoint));
        ExpectMsg<GuestRestored>();
        Assert.Null(Status(guest).Failure);
        guest.Tell(new ResumeGuest(2));
        ExpectMsg<GuestResumed>();
        var redo = new List<GuestWrite> { ExpectWrite(disk, afterCheckpoint), ExpectWrite(disk, afterCheckpoint) };
        Assert.Equal(w1.Offset, redo[0].Offset); // the same workload from the checkpoint on
        Assert.DoesNotContain(redo, r => r.Tag == w1.Tag || r.Tag == w2.Tag); // tags never repeat

        // A late answer to a write of the abandoned lineage is ignored: the window does not grow.
        guest.Tell(new GuestWriteCompleted(w2.Tag), disk.Ref);
        disk.ExpectNoMsg(Quiet);
        Assert.Equal(2, Status(guest).Outstanding);
    }

    [Fact]
    public void The_write_limit_stops_issuing_and_pause_then_answers_at_once()
    {
        var disk = CreateTestProbe();
        var guest = Start(disk, Options(window: 8, limit: 5));
        var writes = disk.ReceiveN(5).Cast<GuestWrite>().ToList();
        disk.ExpectNoMsg(Quiet);
        foreach (var w in writes)
            Ack(guest, disk, w);
        disk.ExpectNoMsg(Quiet);
        guest.Tell(new PauseGuest(1));
        ExpectMsg<GuestPaused>();
        Assert.Equal(5, Status(guest).Writes);
    }

    [Fact]
    public void Against_a_real_image_every_paused_capture_verifies()
    {
        using var dir = new TempDirectory();
        using var image = VolumeImage.Create(dir.Sub("guest.img"), Volume);
        var progress = CreateTestProbe();
        var disk = Sys.ActorOf(Props.Create(() => new ImageDisk(image, progress.Ref)));
        var guest = Sys.ActorOf(SyntheticGuestActor.Props(TestGuestContext.Create(Sys, disk, Volume), Options(seed: 5, window: 8)));
        for (var epoch = 1; epoch <= 3; epoch++)
        {
            guest.Tell(new ResumeGuest(epoch));
            ExpectMsg<GuestResumed>();
            progress.ReceiveN(100 * epoch); // the guest keeps writing while the pause travels
            guest.Tell(new PauseGuest(epoch));
            ExpectMsg<GuestPaused>();
            guest.Tell(new CaptureGuestState(epoch));
            var state = GuestState.Parse(ExpectMsg<GuestStateCaptured>().State);
            var result = GuestVerifier.Verify(state, image);
            _output.WriteLine(result.ToString());
            Assert.True(result.Ok, result.ToString());
            Assert.Null(GuestVerifier.CheckHistory(state));
            // Drain the progress notes of writes issued before the pause took effect.
            progress.ReceiveWhile(TimeSpan.FromMilliseconds(100), m => m);
        }
    }

    /// <summary>A disk that applies each write to an image at once and says so to a probe.</summary>
    private sealed class ImageDisk : ReceiveActor
    {
        public ImageDisk(VolumeImage image, IActorRef progress)
        {
            Receive<GuestWrite>(w =>
            {
                image.Write(w.Offset, w.Data);
                Sender.Tell(new GuestWriteCompleted(w.Tag));
                progress.Tell(w.Tag);
            });
        }
    }
}
