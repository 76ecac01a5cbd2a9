using McActors.Guests;
using McActors.TestSupport;
using Xunit.Abstractions;

namespace McActors.Samples.KeyValue.Tests;

public sealed class KeyValueLogTests(ITestOutputHelper output)
{
    [Fact]
    public void Random_logs_decode_to_the_records_they_were_encoded_from_and_end_where_they_end() =>
        Seeds.Run(50, seed =>
        {
            var random = new Random(seed);
            var records = Enumerable.Range(1, random.Next(0, 40))
                .Select(i => new LogRecord(i, RandomText(random, 1, 40), RandomText(random, 0, random.Next(2) == 0 ? 100 : 3000)))
                .ToList();
            var encoded = records.Select(KeyValueLog.Encode).ToList();
            Assert.All(encoded, bytes => Assert.Equal(0, bytes.Length % KeyValueLog.SectorSize));
            var log = new byte[encoded.Sum(b => b.Length) + random.Next(0, 4) * KeyValueLog.SectorSize]; // zeros after the end
            var offset = 0;
            foreach (var bytes in encoded)
            {
                bytes.CopyTo(log, offset);
                offset += bytes.Length;
            }
            var (decoded, end) = KeyValueLog.Decode(log);
            Assert.Equal(records, decoded);
            Assert.Equal(offset, end);
        }, output);

    [Fact]
    public void A_damaged_byte_in_a_record_is_reported_with_the_record_offset_not_taken_for_the_end()
    {
        var first = KeyValueLog.Encode(new LogRecord(1, "a", "one"));
        var second = KeyValueLog.Encode(new LogRecord(2, "b", "two"));
        var log = first.Concat(second).ToArray();
        log[first.Length + 30] ^= 0x01; // inside the second record's key/value bytes
        var error = Assert.Throws<InvalidDataException>(() => KeyValueLog.Decode(log));
        Assert.Contains($"offset {first.Length}", error.Message);
    }

    [Fact]
    public void Keys_and_values_too_large_for_one_record_are_refused()
    {
        Assert.Throws<ArgumentException>(() => KeyValueLog.Encode(new LogRecord(1, "", "v")));
        Assert.Throws<ArgumentException>(() => KeyValueLog.Encode(new LogRecord(1, new string('k', KeyValueLog.MaxKeyBytes + 1), "v")));
        Assert.Throws<ArgumentException>(() => KeyValueLog.Encode(new LogRecord(1, "k", new string('v', KeyValueLog.MaxValueBytes + 1))));
    }

    [Fact]
    public void A_state_round_trips_to_the_same_bytes_and_a_foreign_guests_state_is_refused()
    {
        var state = new KeyValueState();
        state.Apply(new LogRecord(1, "zeta", "1"), 512);
        state.Apply(new LogRecord(2, "alpha", "2"), 1024);
        var blob = state.Serialize(7);
        var parsed = KeyValueState.Parse(blob);
        Assert.Equal((1024L, 2L, KeyValueLog.Chain(KeyValueLog.Chain(0, new(1, "zeta", "1")), new(2, "alpha", "2"))),
            (parsed.Head, parsed.Sequence, parsed.LogHash));
        Assert.Equal(state.Table, parsed.Table);
        Assert.Equal(blob, parsed.Serialize(7));
        var foreign = new OpaqueGuestState("nbd", 7, new byte[16]).Serialize();
        Assert.Contains("not a key-value store's", Assert.Throws<GuestStateRefusedException>(() => KeyValueState.Parse(foreign)).Message);
    }

    private static string RandomText(Random random, int min, int max) =>
        new([.. Enumerable.Range(0, random.Next(min, max + 1)).Select(_ => (char)random.Next(0x20, 0x7F))]);
}
