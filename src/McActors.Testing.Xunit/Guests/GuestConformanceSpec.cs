using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using McActors.Guests;
using Xunit;
using Xunit.Abstractions;

namespace McActors.Testing.Xunit.Guests;

/// <summary>
/// What every guest must do to run under a primary (GuestProtocol.cs): derive a test class from this,
/// give it your guest's <see cref="GuestProps"/> and, unless your guest writes on its own once
/// resumed, a <see cref="MakeItWrite"/> that makes it write. The facts below then run against your
/// guest with a TestKit probe as its disk. A guest built on <see cref="GuestActorBase"/> passes the
/// protocol facts by construction; the state facts (a round trip, a damaged blob) are yours.
/// </summary>
public abstract class GuestConformanceSpec : Akka.TestKit.Xunit2.TestKit
{
    protected GuestConformanceSpec(ITestOutputHelper? output = null, Config? config = null)
        : base(config ?? Config.Empty, output: output)
    {
    }

    /// <summary>How long an answer may take.</summary>
    protected virtual TimeSpan Patience => TimeSpan.FromSeconds(5);

    /// <summary>The guest under test, given its context (<see cref="TestGuestContext"/> with a probe as the disk).</summary>
    protected abstract Props GuestProps(GuestContext context);

    /// <summary>Called right after a resume: make the guest issue at least one write (by default nothing: the guest writes on its own).</summary>
    protected virtual void MakeItWrite(IActorRef guest)
    {
    }

    /// <summary>A guest started with <paramref name="disk"/> as its disk (the probe sees its GuestWrite and GuestRead).</summary>
    protected IActorRef StartGuest(TestProbe disk) => Sys.ActorOf(GuestProps(TestGuestContext.Create(Sys, disk.Ref)));

    [Fact]
    public void A_new_guest_is_paused_in_epoch_zero_and_its_state_can_be_captured()
    {
        var guest = StartGuest(CreateTestProbe());
        guest.Tell(GetGuestStatus.Instance);
        var status = ExpectMsg<GuestStatus>(Patience);
        Assert.Equal((nameof(GuestRunState.Paused), 0L, 0), (status.State, status.Epoch, status.Outstanding));
        guest.Tell(new CaptureGuestState(0));
        Assert.Equal(0, ExpectMsg<GuestStateCaptured>(Patience).Epoch);
    }

    [Fact]
    public void A_resumed_guest_acknowledges_the_epoch_and_writes_to_its_disk()
    {
        var disk = CreateTestProbe();
        var guest = StartGuest(disk);
        Resume(guest, 1);
        Assert.True(disk.FishForMessage(m => m is GuestWrite, Patience) is GuestWrite);
    }

    [Fact]
    public void A_pause_is_answered_only_once_every_issued_write_was_answered()
    {
        var disk = CreateTestProbe();
        var guest = StartGuest(disk);
        Resume(guest, 1);
        var first = (GuestWrite)disk.FishForMessage(m => m is GuestWrite, Patience);
        guest.Tell(new PauseGuest(1));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // one write at least is unanswered
        guest.Tell(new GuestWriteCompleted(first.Tag), disk.Ref);
        AnswerWritesUntilPaused(guest, disk, 1);
        guest.Tell(GetGuestStatus.Instance);
        var status = ExpectMsg<GuestStatus>(Patience);
        Assert.Equal((nameof(GuestRunState.Paused), 0), (status.State, status.Outstanding));
    }

    [Fact]
    public void Capture_and_restore_are_refused_while_the_guest_runs()
    {
        var disk = CreateTestProbe();
        var guest = StartGuest(disk);
        guest.Tell(new CaptureGuestState(0));
        var blob = ExpectMsg<GuestStateCaptured>(Patience).State;
        Resume(guest, 1);
        guest.Tell(new CaptureGuestState(1));
        Assert.IsType<CaptureGuestState>(ExpectMsg<GuestCommandRefused>(Patience).Command);
        guest.Tell(new RestoreGuestState(0, blob));
        Assert.IsType<RestoreGuestState>(ExpectMsg<GuestCommandRefused>(Patience).Command);
    }

    [Fact]
    public void A_captured_state_restores_into_a_fresh_guest_that_captures_the_same_bytes()
    {
        var blob = CaptureAfterWrites(CreateTestProbe(), epoch: 1);
        var fresh = StartGuest(CreateTestProbe());
        fresh.Tell(new RestoreGuestState(1, blob));
        Assert.Equal(1, ExpectMsg<GuestRestored>(Patience).Epoch);
        fresh.Tell(new CaptureGuestState(1));
        Assert.Equal(blob, ExpectMsg<GuestStateCaptured>(Patience).State);
    }

    [Fact]
    public void A_state_with_a_damaged_byte_is_refused_and_the_guest_will_not_run_until_a_good_one_is_restored()
    {
        var blob = CaptureAfterWrites(CreateTestProbe(), epoch: 1);
        // The middle and the end: a guest's checksum must cover its payload and itself.
        foreach (var position in new[] { blob.Length / 2, blob.Length - 1 })
        {
            var disk = CreateTestProbe();
            var guest = StartGuest(disk);
            var damaged = (byte[])blob.Clone();
            damaged[position] ^= 0x5A;
            guest.Tell(new RestoreGuestState(1, damaged));
            Assert.IsType<RestoreGuestState>(ExpectMsg<GuestCommandRefused>(Patience,
                $"a blob damaged at byte {position} of {blob.Length} was accepted").Command);
            // Running fresh over checkpoint 1's disk would be running as a guest it is not.
            guest.Tell(new ResumeGuest(2));
            Assert.IsType<ResumeGuest>(ExpectMsg<GuestCommandRefused>(Patience).Command);
            MakeItWrite(guest);
            Assert.DoesNotContain(disk.ReceiveWhile(TimeSpan.FromMilliseconds(200), m => m), m => m is GuestWrite);
            guest.Tell(new RestoreGuestState(1, blob));
            Assert.Equal(1, ExpectMsg<GuestRestored>(Patience).Epoch);
            Resume(guest, 2);
            Assert.True(disk.FishForMessage(m => m is GuestWrite, Patience) is GuestWrite);
        }
    }

    [Fact]
    public void A_pausing_guest_refuses_capture_and_a_paused_one_issues_no_write_until_resumed()
    {
        var disk = CreateTestProbe();
        var guest = StartGuest(disk);
        Resume(guest, 1);
        var first = (GuestWrite)disk.FishForMessage(m => m is GuestWrite, Patience);
        guest.Tell(new PauseGuest(1));
        guest.Tell(new CaptureGuestState(1));
        Assert.IsType<CaptureGuestState>(ExpectMsg<GuestCommandRefused>(Patience).Command);
        guest.Tell(new GuestWriteCompleted(first.Tag), disk.Ref);
        AnswerWritesUntilPaused(guest, disk, 1);
        // Paused: asked to write, it holds the write for the next epoch.
        MakeItWrite(guest);
        Assert.DoesNotContain(disk.ReceiveWhile(TimeSpan.FromMilliseconds(300), m => m), m => m is GuestWrite);
    }

    [Fact]
    public void Answers_to_writes_the_guest_never_issued_are_ignored()
    {
        var disk = CreateTestProbe();
        var guest = StartGuest(disk);
        Resume(guest, 1);
        var write = (GuestWrite)disk.FishForMessage(m => m is GuestWrite, Patience);
        guest.Tell(new GuestWriteCompleted(write.Tag + 1_000_000), disk.Ref);
        guest.Tell(new GuestWriteFailed(write.Tag + 1_000_001, "not yours"), disk.Ref);
        guest.Tell(new PauseGuest(1));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // the real write is still unanswered
        guest.Tell(new GuestWriteCompleted(write.Tag), disk.Ref);
        AnswerWritesUntilPaused(guest, disk, 1);
    }

    /// <summary>Resumes <paramref name="guest"/> in <paramref name="epoch"/> and makes it write.</summary>
    protected void Resume(IActorRef guest, long epoch)
    {
        guest.Tell(new ResumeGuest(epoch));
        Assert.Equal(epoch, ExpectMsg<GuestResumed>(Patience).Epoch);
        MakeItWrite(guest);
    }

    /// <summary>Answers every write <paramref name="disk"/> sees until the guest says it paused.</summary>
    protected void AnswerWritesUntilPaused(IActorRef guest, TestProbe disk, long epoch)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            if (disk.HasMessages && disk.ReceiveOne(TimeSpan.Zero) is GuestWrite write)
                guest.Tell(new GuestWriteCompleted(write.Tag), disk.Ref);
            if (ReceiveOne(TimeSpan.FromMilliseconds(20)) is { } answer)
            {
                Assert.Equal(epoch, Assert.IsType<GuestPaused>(answer).Epoch);
                return;
            }
        }
        Assert.Fail($"the guest did not pause within {Patience}");
    }

    /// <summary>Runs a guest in <paramref name="epoch"/>, answers its writes, pauses it and captures its state.</summary>
    protected byte[] CaptureAfterWrites(TestProbe disk, long epoch)
    {
        var guest = StartGuest(disk);
        Resume(guest, epoch);
        var first = (GuestWrite)disk.FishForMessage(m => m is GuestWrite, Patience);
        guest.Tell(new GuestWriteCompleted(first.Tag), disk.Ref);
        guest.Tell(new PauseGuest(epoch));
        AnswerWritesUntilPaused(guest, disk, epoch);
        guest.Tell(new CaptureGuestState(epoch));
        return ExpectMsg<GuestStateCaptured>(Patience).State;
    }
}
