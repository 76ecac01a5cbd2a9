using Akka.Actor;
using Akka.TestKit;
using McActors.Guests;
using McActors.Replication;
using McActors.Testing.Xunit.Guests;
using Xunit.Abstractions;

namespace McActors.Samples.KeyValue.Tests;

/// <summary>The key-value guest against a probe disk: what a client is told, and when.</summary>
public sealed class KeyValueGuestTests : Akka.TestKit.Xunit2.TestKit
{
    private readonly TestProbe _disk;
    private readonly TestProbe _client;
    private readonly IActorRef _guest;

    public KeyValueGuestTests(ITestOutputHelper output) : base(output: output)
    {
        _disk = CreateTestProbe();
        _client = CreateTestProbe();
        _guest = Sys.ActorOf(KeyValueGuestActor.Props(TestGuestContext.Create(Sys, _disk.Ref), ActorRefs.Nobody));
        _guest.Tell(new ResumeGuest(1));
        ExpectMsg<GuestResumed>();
    }

    [Fact]
    public void A_put_is_done_only_once_the_checkpoint_holding_its_log_record_committed()
    {
        _guest.Tell(new Put("k", "v"), _client.Ref);
        var write = _disk.ExpectMsg<GuestWrite>();
        Assert.Equal(0, write.Offset);
        Assert.Equal(new LogRecord(1, "k", "v"), KeyValueLog.Decode(write.Data).Records.Single());
        _client.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        _guest.Tell(new GuestWriteCompleted(write.Tag), _disk.Ref);
        var release = _disk.ExpectMsg<ReleaseWhenCommitted>();
        _client.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // applied, not committed
        _guest.Tell(release.Output, _disk.Ref);
        Assert.Equal(new PutDone("k", 1), _client.ExpectMsg<PutDone>());
    }

    [Fact]
    public void A_get_of_a_key_whose_last_put_is_not_committed_waits_for_the_commit()
    {
        _guest.Tell(new Get("k"), _client.Ref);
        Assert.Equal(new Value("k", null), _client.ExpectMsg<Value>());
        _guest.Tell(new Put("k", "v"), _client.Ref);
        var write = _disk.ExpectMsg<GuestWrite>();
        _guest.Tell(new GuestWriteCompleted(write.Tag), _disk.Ref);
        var release = _disk.ExpectMsg<ReleaseWhenCommitted>();
        _guest.Tell(new Get("k"), _client.Ref);
        _client.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // a dirty read could be rolled back
        _guest.Tell(release.Output, _disk.Ref);
        _client.ExpectMsg<PutDone>();
        Assert.Equal(new Value("k", "v"), _client.ExpectMsg<Value>());
    }

    [Fact]
    public void Records_answered_out_of_order_reach_the_table_in_log_order()
    {
        _guest.Tell(new Put("k", "first"), _client.Ref);
        _guest.Tell(new Put("k", "second"), _client.Ref);
        var first = _disk.ExpectMsg<GuestWrite>();
        var second = _disk.ExpectMsg<GuestWrite>();
        Assert.Equal(first.Data.Length, second.Offset);
        _guest.Tell(new GuestWriteCompleted(second.Tag), _disk.Ref);
        _disk.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // the second waits for the first
        _guest.Tell(new GuestWriteCompleted(first.Tag), _disk.Ref);
        _guest.Tell(_disk.ExpectMsg<ReleaseWhenCommitted>().Output, _disk.Ref);
        _client.ExpectMsg<PutDone>();
        _client.ExpectMsg<PutDone>();
        _guest.Tell(new Get("k"), _client.Ref);
        Assert.Equal(new Value("k", "second"), _client.ExpectMsg<Value>());
    }

    [Fact]
    public void Verify_replays_the_log_read_back_from_the_disk_and_names_a_difference()
    {
        var image = PutAThenBThenAAgain();

        _guest.Tell(Verify.Instance, _client.Ref);
        AnswerReads(image);
        var verdict = _client.ExpectMsg<Verified>();
        Assert.True(verdict.Ok, verdict.Detail);
        Assert.Equal((3L, 2), (verdict.Records, verdict.Keys));

        // A valid record past the head (what a rollback that missed a block would leave behind).
        KeyValueLog.Encode(new LogRecord(4, "a", "leaked")).CopyTo(image, 1536);
        _guest.Tell(Verify.Instance, _client.Ref);
        AnswerReads(image);
        verdict = _client.ExpectMsg<Verified>();
        Assert.False(verdict.Ok);
        Assert.Contains("4 records", verdict.Detail);
        image.AsSpan(1536, 512).Clear();

        // The disk lost the last record's bytes (what a rollback to the wrong image would look like).
        image.AsSpan(1024, 512).Clear();
        _guest.Tell(Verify.Instance, _client.Ref);
        AnswerReads(image);
        verdict = _client.ExpectMsg<Verified>();
        Assert.False(verdict.Ok);
        Assert.Contains("2 records", verdict.Detail);
    }

    [Fact]
    public void Verify_fails_on_a_wrong_record_that_a_later_put_of_the_same_key_hides_from_the_table()
    {
        var image = PutAThenBThenAAgain();

        // The first record replaced by a valid one of the same sequence and key but another value (what
        // a rollback that restored a block of another lineage would leave): "a" = "3" still wins the replay.
        KeyValueLog.Encode(new LogRecord(1, "a", "wrong")).CopyTo(image, 0);
        _guest.Tell(Verify.Instance, _client.Ref);
        AnswerReads(image);
        var verdict = _client.ExpectMsg<Verified>();
        Assert.False(verdict.Ok, verdict.Detail);
        Assert.Contains("a record a later put overwrote is not the one written", verdict.Detail);
    }

    [Fact]
    public void A_request_with_no_key_is_refused_and_the_store_keeps_its_table()
    {
        _guest.Tell(new Put("k", "v"), _client.Ref);
        var write = _disk.ExpectMsg<GuestWrite>();
        _guest.Tell(new GuestWriteCompleted(write.Tag), _disk.Ref);
        _guest.Tell(_disk.ExpectMsg<ReleaseWhenCommitted>().Output, _disk.Ref);
        _client.ExpectMsg<PutDone>();
        _guest.Tell(new Get(null!), _client.Ref);
        _client.ExpectMsg<Refused>();
        _guest.Tell(new Put(null!, "v"), _client.Ref);
        _client.ExpectMsg<Refused>();
        _guest.Tell(new Get("k"), _client.Ref);
        Assert.Equal(new Value("k", "v"), _client.ExpectMsg<Value>());
    }

    /// <summary>Puts a=1, b=2, a=3 and completes their writes into an image; returns it.</summary>
    private byte[] PutAThenBThenAAgain()
    {
        var image = new byte[1 << 20];
        foreach (var (key, value) in new[] { ("a", "1"), ("b", "2"), ("a", "3") })
            _guest.Tell(new Put(key, value), _client.Ref);
        foreach (var write in Enumerable.Range(0, 3).Select(_ => _disk.ExpectMsg<GuestWrite>()).ToList())
        {
            write.Data.CopyTo(image, write.Offset);
            _guest.Tell(new GuestWriteCompleted(write.Tag), _disk.Ref);
        }
        _disk.ExpectMsg<ReleaseWhenCommitted>();
        return image;
    }

    private void AnswerReads(byte[] image)
    {
        var read = _disk.ExpectMsg<GuestRead>();
        _guest.Tell(new GuestReadCompleted(read.Tag, image.AsSpan((int)read.Offset, read.Length).ToArray()), _disk.Ref);
    }
}
