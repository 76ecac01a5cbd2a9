namespace McActors.Node.Bench;

/// <summary>
/// A bench's work directory under the system temp directory: removed after a run that succeeded,
/// kept and named after one that failed (its node and server logs say why) or with --keep.
/// </summary>
public static class BenchWorkDirectory
{
    public static async Task<T> UseAsync<T>(string bench, bool keep, TextWriter output, Func<string, Task<T>> run)
    {
        var work = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"mcactors-bench-{bench}-{Guid.NewGuid():N}")).FullName;
        var failed = true;
        try
        {
            var result = await run(work);
            failed = false;
            return result;
        }
        finally
        {
            if (keep || failed)
                await output.WriteLineAsync($"work directory kept: {work}");
            else
                Directory.Delete(work, recursive: true);
        }
    }
}
