using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace McActors.Node.Bench;

/// <summary>Which side of its bound a measured value must fall on.</summary>
public enum BenchTargetKind
{
    AtLeast,
    AtMost,
}

/// <summary>The value a row should reach; shown in the table, never in the JSON.</summary>
public readonly record struct BenchTarget(BenchTargetKind Kind, double Bound)
{
    public static BenchTarget AtLeast(double bound) => new(BenchTargetKind.AtLeast, bound);

    public static BenchTarget AtMost(double bound) => new(BenchTargetKind.AtMost, bound);

    public bool IsMetBy(double value) => Kind == BenchTargetKind.AtLeast ? value >= Bound : value <= Bound;

    public override string ToString() =>
        $"{(Kind == BenchTargetKind.AtLeast ? ">=" : "<=")} {Bound.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>One measurement: <see cref="Value"/> is already rounded to <see cref="Decimals"/>.</summary>
public sealed record BenchRow(string Name, double Value, string Unit, int Decimals, BenchTarget? Target)
{
    /// <summary>Null when the row has no target.</summary>
    public bool? TargetMet => Target?.IsMetBy(Value);

    public string FormattedValue => Value.ToString("F" + Decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}

/// <summary>
/// The result of one <c>bench</c> subcommand: named rows (value, unit, optional target), printed as
/// a table and written as JSON of exactly the shape <c>{"rows":[{"name":..,"value":..,"unit":..}]}</c>
/// so that every bench's output can be compared by the same tools.
/// </summary>
public sealed class BenchReport
{
    private readonly List<BenchRow> _rows = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public IReadOnlyList<BenchRow> Rows => _rows;

    /// <summary>Rows whose target was not reached, in row order.</summary>
    public IReadOnlyList<BenchRow> MissedTargets => [.. _rows.Where(r => r.TargetMet == false)];

    /// <summary>Adds a row; the value is rounded to <paramref name="decimals"/> for both table and JSON.</summary>
    public BenchRow Add(string name, double value, string unit, int decimals, BenchTarget? target = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(unit);
        ArgumentOutOfRangeException.ThrowIfNegative(decimals);
        if (!double.IsFinite(value))
            throw new ArgumentException($"row {name}: value {value} is not a finite number", nameof(value));
        if (!_names.Add(name))
            throw new ArgumentException($"row {name} is already in the report", nameof(name));
        var row = new BenchRow(name, Math.Round(value, decimals, MidpointRounding.AwayFromZero), unit, decimals, target);
        _rows.Add(row);
        return row;
    }

    /// <summary>The value of a row added earlier.</summary>
    public double this[string name] =>
        _rows.Find(r => r.Name == name)?.Value ?? throw new KeyNotFoundException($"no row {name} in the report");

    /// <summary>Prints the rows as an aligned table, then which targets were missed.</summary>
    public void PrintTable(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        string[] header = ["name", "value", "unit", "target", ""];
        var cells = _rows.Select(r => new[]
        {
            r.Name,
            r.FormattedValue,
            r.Unit,
            r.Target?.ToString() ?? "",
            r.TargetMet switch { true => "ok", false => "MISSED", null => "" },
        }).ToList();
        var widths = Enumerable.Range(0, header.Length)
            .Select(c => cells.Select(row => row[c].Length).Append(header[c].Length).Max())
            .ToArray();
        output.WriteLine(FormatLine(header, widths));
        output.WriteLine(FormatLine([.. widths.Select(w => new string('-', w))], widths));
        foreach (var row in cells)
            output.WriteLine(FormatLine(row, widths));

        var withTarget = _rows.Count(r => r.Target is not null);
        var missed = MissedTargets;
        if (withTarget == 0)
            return;
        if (missed.Count == 0)
        {
            output.WriteLine($"all {withTarget} targets met");
            return;
        }
        output.WriteLine($"{missed.Count} of {withTarget} targets missed:");
        foreach (var r in missed)
            output.WriteLine($"  {r.Name} = {r.FormattedValue} {r.Unit}, target {r.Target}");
    }

    /// <summary>The rows as JSON: <c>{"rows":[{"name":..,"value":..,"unit":..}]}</c>.</summary>
    public string ToJson() =>
        JsonSerializer.Serialize(new JsonReport([.. _rows.Select(r => new JsonRow(r.Name, r.Value, r.Unit))]),
            BenchJsonContext.Default.JsonReport);

    public void WriteJson(string path) => File.WriteAllText(path, ToJson() + "\n");

    private static string FormatLine(string[] cells, int[] widths)
    {
        // Name and unit left-aligned, the value right-aligned so that decimal points line up.
        var parts = cells.Select((cell, c) => c == 1 ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]));
        return string.Join("  ", parts).TrimEnd();
    }

    internal sealed record JsonReport(IReadOnlyList<JsonRow> Rows);

    internal sealed record JsonRow(string Name, double Value, string Unit);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(BenchReport.JsonReport))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
