using System.Diagnostics;

namespace McActors.Node.Tests;

/// <summary>Re-checks a condition on other processes' files until it holds or the time runs out (the AwaitAssert of process tests).</summary>
internal static class Eventually
{
    public static async Task<T> Get<T>(Func<T?> probe, TimeSpan timeout, string what) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Exception? last = null;
            try
            {
                if (probe() is { } value)
                    return value;
            }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException or InvalidDataException)
            {
                last = e; // a file being replaced; try again
            }
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds:0} s{(last is null ? "" : $": {last.Message}")}");
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }
    }

    /// <summary>The same with a probe that asks another process (a coordinator's status): an unanswered ask counts as "not yet".</summary>
    public static async Task<T> GetAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what) where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Exception? last = null;
            try
            {
                if (await probe() is { } value)
                    return value;
            }
            catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
            {
                last = e;
            }
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds:0} s{(last is null ? "" : $": {last.Message}")}");
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }
    }
}
