using System.Buffers.Binary;
using System.Text;
using McActors.Guests;

namespace McActors.Samples.KeyValue;

/// <summary>
/// The store's guest state: the table and where the log ends (<see cref="Head"/>, the offset of the
/// next record; <see cref="Sequence"/>, the last record's number; <see cref="LogHash"/>, the running
/// hash of every record applied). At a checkpoint the table is exactly the replay of the log's
/// records before <see cref="Head"/>, and those records hash to <see cref="LogHash"/>. Serialized as an
/// <see cref="OpaqueGuestState"/> of kind "kv" (magic, epoch, checksum), entries in ordinal key
/// order, so equal states give equal bytes.
/// </summary>
public sealed class KeyValueState
{
    public const string Kind = "kv";

    public SortedDictionary<string, string> Table { get; } = new(StringComparer.Ordinal);

    public long Head { get; set; }

    public long Sequence { get; set; }

    /// <summary><see cref="KeyValueLog.Chain"/> over every record applied, in log order: what the log before <see cref="Head"/> must hash to.</summary>
    public ulong LogHash { get; private set; }

    /// <summary>Applies one log record (in log order) to the table.</summary>
    public void Apply(LogRecord record, long end)
    {
        Table[record.Key] = record.Value;
        Sequence = record.Sequence;
        Head = end;
        LogHash = KeyValueLog.Chain(LogHash, record);
    }

    public byte[] Serialize(long epoch)
    {
        using var payload = new MemoryStream();
        using (var writer = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Head);
            writer.Write(Sequence);
            writer.Write(LogHash);
            writer.Write(Table.Count);
            foreach (var (key, value) in Table)
            {
                writer.Write(key);
                writer.Write(value);
            }
        }
        return new OpaqueGuestState(Kind, epoch, payload.ToArray()).Serialize();
    }

    /// <summary>The state in <paramref name="blob"/>; <see cref="GuestStateRefusedException"/> if it is damaged or not a key-value store's.</summary>
    public static KeyValueState Parse(byte[] blob)
    {
        var opaque = OpaqueGuestState.Parse(blob); // checks magic and checksum
        if (opaque.Kind != Kind)
            throw new GuestStateRefusedException($"state is a '{opaque.Kind}' guest's, not a key-value store's");
        var state = new KeyValueState();
        try
        {
            using var reader = new BinaryReader(new MemoryStream(opaque.Payload), Encoding.UTF8);
            state.Head = reader.ReadInt64();
            state.Sequence = reader.ReadInt64();
            state.LogHash = reader.ReadUInt64();
            var count = reader.ReadInt32();
            if (state.Head < 0 || state.Head % KeyValueLog.SectorSize != 0 || count < 0)
                throw new GuestStateCorruptException($"head {state.Head} or count {count} is impossible");
            for (var i = 0; i < count; i++)
                state.Table[reader.ReadString()] = reader.ReadString();
            if (reader.BaseStream.Position != opaque.Payload.Length)
                throw new GuestStateCorruptException("bytes after the last entry");
        }
        catch (EndOfStreamException)
        {
            throw new GuestStateCorruptException("the table is cut short");
        }
        return state;
    }
}
