using System.Reflection;
using Akka.Configuration;
using McActors.Configuration;

namespace McActors.Checkpointing.Policies;

/// <summary>
/// Makes the policy named by <c>mcactors.checkpoint.policy</c>: a built-in one by name, or a type
/// by its assembly-qualified name (<c>"Namespace.Type, Assembly"</c>) implementing
/// <see cref="ICheckpointPolicy"/>, with a public constructor taking <see cref="McActorsSettings"/>
/// (its <see cref="McActorsSettings.CheckpointSection"/> holds any keys of its own) or none.
/// </summary>
public static class CheckpointPolicies
{
    public const string Key = "mcactors.checkpoint.policy";

    public static readonly IReadOnlyList<string> BuiltIn = [FixedIntervalPolicy.Name, DirtyBytesPolicy.Name, OnDemandPolicy.Name];

    public static ICheckpointPolicy Create(McActorsSettings settings) => settings.CheckpointPolicy switch
    {
        FixedIntervalPolicy.Name => new FixedIntervalPolicy(),
        DirtyBytesPolicy.Name => new DirtyBytesPolicy(settings.DirtyBytesThreshold),
        OnDemandPolicy.Name => new OnDemandPolicy(),
        var typeName => Construct(TypeOf(typeName), settings),
    };

    /// <summary>Checks that <paramref name="name"/> names a policy, with an error naming the key.</summary>
    public static void Validate(string name)
    {
        if (!BuiltIn.Contains(name))
            TypeOf(name);
    }

    private static Type TypeOf(string typeName)
    {
        Type? type;
        try
        {
            type = Type.GetType(typeName, throwOnError: false);
        }
        catch (Exception e) when (e is ArgumentException or FileLoadException or BadImageFormatException)
        {
            type = null;
        }
        if (type is null)
            throw new ConfigurationException($"{Key} = {typeName}: neither one of {string.Join(", ", BuiltIn)} nor a type that can be loaded");
        if (!typeof(ICheckpointPolicy).IsAssignableFrom(type) || type.IsAbstract)
            throw new ConfigurationException($"{Key} = {typeName}: {type.FullName} is not a concrete {nameof(ICheckpointPolicy)}");
        return type;
    }

    private static ICheckpointPolicy Construct(Type type, McActorsSettings settings)
    {
        try
        {
            if (type.GetConstructor([typeof(McActorsSettings)]) is { } withSettings)
                return (ICheckpointPolicy)withSettings.Invoke([settings]);
            if (type.GetConstructor(Type.EmptyTypes) is { } plain)
                return (ICheckpointPolicy)plain.Invoke([]);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new ConfigurationException($"{Key} = {type.FullName}: its constructor failed: {e.InnerException.Message}");
        }
        throw new ConfigurationException($"{Key} = {type.FullName}: no public constructor taking {nameof(McActorsSettings)} or nothing");
    }
}
