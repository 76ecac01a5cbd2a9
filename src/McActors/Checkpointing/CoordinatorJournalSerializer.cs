using System.Runtime.Serialization;
using System.Text.Json;
using Akka.Actor;
using Akka.Serialization;

namespace McActors.Checkpointing;

/// <summary>
/// The serializer of the coordinator's journal events and snapshots (bound in src/McActors/reference.conf).
/// The journal stores its <see cref="Id"/> and a manifest with every row, so both are fixed: the
/// manifest is a stable name with a version ("roles-assigned.v1"), never a CLR type name, so that
/// renaming or moving a type cannot orphan a journal. The payload is JSON: a field added with a
/// default reads old rows unchanged; a change that cannot do that gets a new version (".v2") and
/// keeps reading the old one. Rows written before this serializer keep the serializer id they were
/// written with and are read by it.
/// </summary>
public sealed class CoordinatorJournalSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 417_001;

    /// <summary>Every type the journal holds, by manifest. A type missing here fails its first persist, loudly.</summary>
    public static readonly IReadOnlyDictionary<string, Type> Manifests = new Dictionary<string, Type>
    {
        ["volume-created.v1"] = typeof(VolumeCreated),
        ["roles-assigned.v1"] = typeof(RolesAssigned),
        ["checkpoint-committed.v1"] = typeof(CheckpointCommitted),
        ["secondary-added.v1"] = typeof(SecondaryAdded),
        ["secondary-dropped.v1"] = typeof(SecondaryDropped),
        ["coordinator-took-over.v1"] = typeof(CoordinatorTookOver),
        ["coordinator-state.v1"] = typeof(CoordinatorState),
    };

    private static readonly Dictionary<Type, string> ByType = Manifests.ToDictionary(m => m.Value, m => m.Key);
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.General);

    public override int Identifier => Id;

    public override string Manifest(object o) => ByType.TryGetValue(o.GetType(), out var manifest)
        ? manifest
        : throw new SerializationException($"{o.GetType().FullName} has no journal manifest: add it to {nameof(CoordinatorJournalSerializer)}.{nameof(Manifests)}");

    public override byte[] ToBinary(object obj)
    {
        Manifest(obj); // refuse a type without a manifest before anything is written
        return JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), Json);
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!Manifests.TryGetValue(manifest, out var type))
            throw new SerializationException($"journal row with manifest '{manifest}' is not one this version knows (written by a newer McActors?)");
        try
        {
            return JsonSerializer.Deserialize(bytes, type, Json)
                ?? throw new SerializationException($"journal row '{manifest}' is null");
        }
        catch (JsonException e)
        {
            throw new SerializationException($"journal row '{manifest}' cannot be read: {e.Message}", e);
        }
    }
}
