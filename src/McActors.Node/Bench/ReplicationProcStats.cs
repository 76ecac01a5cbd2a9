using System.Globalization;

namespace McActors.Node.Bench;

/// <summary>
/// I/O counters of one process from <c>/proc/PID/io</c>: <see cref="WriteBytes"/> is what the process
/// sent towards the block layer (counted when it dirties page-cache pages or writes directly),
/// <see cref="WriteChars"/> what it handed to write system calls (sockets and pipes included).
/// </summary>
public readonly record struct ProcessIo(long WriteBytes, long WriteChars, long CancelledWriteBytes)
{
    public static ProcessIo operator -(ProcessIo a, ProcessIo b) =>
        new(a.WriteBytes - b.WriteBytes, a.WriteChars - b.WriteChars, a.CancelledWriteBytes - b.CancelledWriteBytes);
}

/// <summary>Resident memory of one process from <c>/proc/PID/status</c>, bytes: now and its peak.</summary>
public readonly record struct ProcessMemory(long RssBytes, long PeakRssBytes);

/// <summary>Reads Linux per-process counters of the bench's child nodes. Null on any other system or a process gone.</summary>
public static class ReplicationProcStats
{
    public static ProcessIo? ReadIo(int pid)
    {
        var fields = ReadFields($"/proc/{pid}/io", ':');
        if (fields is null || !fields.TryGetValue("write_bytes", out var writeBytes) || !fields.TryGetValue("wchar", out var wchar))
            return null;
        return new ProcessIo(writeBytes, wchar, fields.GetValueOrDefault("cancelled_write_bytes"));
    }

    public static ProcessMemory? ReadMemory(int pid)
    {
        var fields = ReadFields($"/proc/{pid}/status", ':');
        if (fields is null || !fields.TryGetValue("VmRSS", out var rssKb) || !fields.TryGetValue("VmHWM", out var hwmKb))
            return null;
        return new ProcessMemory(rssKb * 1024, hwmKb * 1024);
    }

    /// <summary>User + system CPU time the process used so far, seconds (<c>/proc/PID/stat</c>, 100 ticks per second as on every Linux build).</summary>
    public static double? ReadCpuSeconds(int pid)
    {
        const double TicksPerSecond = 100;
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // "pid (comm) state ..." - comm may hold spaces and parentheses: the fields start after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after "state" (field 3).
        if (fields.Length < 13
            || !long.TryParse(fields[11], NumberStyles.Integer, CultureInfo.InvariantCulture, out var user)
            || !long.TryParse(fields[12], NumberStyles.Integer, CultureInfo.InvariantCulture, out var system))
            return null;
        return (user + system) / TicksPerSecond;
    }

    /// <summary>The 1-minute load average of the machine (<c>/proc/loadavg</c>).</summary>
    public static double? ReadLoadAverage()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out var load) ? load : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>"name: number [kB]" lines; lines whose value is not a number are left out.</summary>
    private static Dictionary<string, long>? ReadFields(string path, char separator)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        var fields = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            var at = line.IndexOf(separator);
            if (at <= 0)
                continue;
            var value = line[(at + 1)..].Trim();
            var space = value.IndexOf(' ');
            if (space > 0)
                value = value[..space];
            if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number))
                fields[line[..at].Trim()] = number;
        }
        return fields;
    }
}
