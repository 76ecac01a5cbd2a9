using Akka.Actor;
using McActors.Configuration;
using McActors.Protocol;

namespace McActors.Guests;

/// <summary>
/// What a guest is given when its primary starts it: the <see cref="Disk"/> actor it writes and reads
/// through (GuestProtocol.cs), the <see cref="Volume"/> it runs on (id, size, block size), which
/// replica it runs on, that replica's data directory (a guest may keep files of its own there, outside
/// the checkpoint), and the node's settings. A guest factory is a <c>Func&lt;GuestContext, Props&gt;</c>.
/// </summary>
public sealed record GuestContext(IActorRef Disk, VolumeSpec Volume, string ReplicaId, string DataDirectory, McActorsSettings Settings);
