namespace McActors.Tests.Checking;

/// <summary>A model state the explorer can branch on: every step yields a new state, the old one is left as it was.</summary>
public interface IExplorable<TSelf> where TSelf : IExplorable<TSelf>
{
    /// <summary>The whole state as a canonical string: two states with the same key behave the same from here on.</summary>
    string Key { get; }

    /// <summary>The first invariant broken on the way to this state, or null.</summary>
    string? Violation { get; }

    /// <summary>Every step enabled here, each with a label for traces and the state it leads to.</summary>
    IEnumerable<(string Label, Func<TSelf> Next)> Enabled();
}

/// <summary>What an exploration saw: the states and steps explored and, if an invariant broke, the steps that break it.</summary>
public sealed record ExplorationResult(long States, long Steps, int Depth, string? Violation, IReadOnlyList<string> Trace, int? Seed = null)
{
    public bool Complete { get; init; } = true;

    public override string ToString() =>
        Violation is null
            ? $"{States} states, {Steps} steps, depth {Depth}{(Complete ? "" : " (state limit reached)")}{(Seed is { } s ? $", seed {s}" : "")}: no violation"
            : $"violation after {Trace.Count} steps{(Seed is { } seed ? $" (seed {seed})" : "")}: {Violation}\n  " + string.Join("\n  ", Trace);
}

/// <summary>
/// A small explicit-state model checker. <see cref="Exhaustive"/> explores every order of the
/// enabled steps breadth first, deduplicating states by key, so a violation comes with a
/// shortest trace; <see cref="RandomWalks"/> goes deeper than the exhaustive bound can afford,
/// along seeded random paths (a seed replays its walks).
/// </summary>
public static class StateExplorer
{
    /// <param name="visit">Called once per distinct state (for a test to measure what the exploration covered).</param>
    public static ExplorationResult Exhaustive<T>(T initial, int maxStates = 2_000_000, Action<T>? visit = null) where T : IExplorable<T>
    {
        // Parent links, to rebuild the trace of a violation without keeping paths per state.
        var seen = new Dictionary<string, (string? Parent, string Label, int Depth)> { [initial.Key] = (null, "", 0) };
        var queue = new Queue<(T State, string Key)>();
        queue.Enqueue((initial, initial.Key));
        long steps = 0;
        var depth = 0;
        if (initial.Violation is { } atStart)
            return new ExplorationResult(1, 0, 0, atStart, []);
        while (queue.Count > 0)
        {
            var (state, key) = queue.Dequeue();
            visit?.Invoke(state);
            var d = seen[key].Depth;
            foreach (var (label, next) in state.Enabled())
            {
                steps++;
                var successor = next();
                var successorKey = successor.Key;
                if (seen.ContainsKey(successorKey))
                    continue;
                seen[successorKey] = (key, label, d + 1);
                depth = Math.Max(depth, d + 1);
                if (successor.Violation is { } violation)
                    return new ExplorationResult(seen.Count, steps, depth, violation, TraceTo(seen, successorKey));
                if (seen.Count >= maxStates)
                    return new ExplorationResult(seen.Count, steps, depth, null, []) { Complete = false };
                queue.Enqueue((successor, successorKey));
            }
        }
        return new ExplorationResult(seen.Count, steps, depth, null, []);
    }

    public static ExplorationResult RandomWalks<T>(T initial, int seed, int walks, int maxSteps) where T : IExplorable<T>
    {
        var random = new Random(seed);
        var distinct = new HashSet<string>();
        long steps = 0;
        var depth = 0;
        for (var walk = 0; walk < walks; walk++)
        {
            var state = initial;
            var trace = new List<string>();
            for (var i = 0; i < maxSteps; i++)
            {
                var enabled = state.Enabled().ToList();
                if (enabled.Count == 0)
                    break;
                var (label, next) = enabled[random.Next(enabled.Count)];
                state = next();
                steps++;
                trace.Add(label);
                distinct.Add(state.Key);
                depth = Math.Max(depth, trace.Count);
                if (state.Violation is { } violation)
                    return new ExplorationResult(distinct.Count, steps, depth, $"walk {walk}: {violation}", trace, seed);
            }
        }
        return new ExplorationResult(distinct.Count, steps, depth, null, [], seed);
    }

    private static List<string> TraceTo(Dictionary<string, (string? Parent, string Label, int Depth)> seen, string key)
    {
        var trace = new List<string>();
        for (var k = key; seen[k].Parent is { } parent; k = parent)
            trace.Add(seen[k].Label);
        trace.Reverse();
        return trace;
    }
}
