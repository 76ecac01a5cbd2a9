using Akka.Actor;
using Akka.Hosting;
using McActors.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace McActors.Samples.KeyValue;

/// <summary>A McActors node whose replicas run the key-value store: the guest, and its front door on every replica node.</summary>
public static class KeyValueNode
{
    public static IServiceCollection AddKeyValueNode(this IServiceCollection services, NodeOptions node) =>
        services.AddAkka(NodeOptions.SystemName, akka =>
        {
            if (node.Kind == NodeKind.Arbiter)
                akka.WithMcActorsArbiter(node);
            else
                akka.WithMcActorsReplica(node, replica => replica
                    .Guest(guest => KeyValueGuestActor.Props(guest))
                    .WithNodeActors((system, _) => system.ActorOf(KeyValueFrontDoor.Props(node.Name), KeyValueFrontDoor.Name)));
        });
}
