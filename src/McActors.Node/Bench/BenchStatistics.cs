namespace McActors.Node.Bench;

/// <summary>Summaries of repeated measurements, shared by the benches.</summary>
public static class BenchStatistics
{
    /// <summary>The median (the mean of the two middle values for an even count); 0 for no values.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0)
            return 0;
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
