using Akka.Actor;

namespace McActors.Samples.KeyValue.Tests;

/// <summary>
/// What a client of the store does: ask a node's front door; on NotPrimary, a refusal or no answer,
/// ask the next one (a failover in progress ends with one of them primary).
/// </summary>
internal static class KeyValueClient
{
    /// <summary>Asks the front doors <paramref name="doors"/> gives (anew each attempt: nodes come and go) until one answers a <typeparamref name="T"/>.</summary>
    public static async Task<T> AskPrimaryAsync<T>(Func<IReadOnlyList<ActorSelection>> doors, object request, TimeSpan patience)
    {
        var deadline = DateTime.UtcNow + patience;
        object? last = null;
        for (var attempt = 0; DateTime.UtcNow < deadline; attempt++)
        {
            var now = doors();
            try
            {
                last = await now[attempt % now.Count].Ask<object>(request, TimeSpan.FromSeconds(3));
                if (last is T answer)
                    return answer;
                await Task.Delay(TimeSpan.FromMilliseconds(50)); // a client's retry pace, not a test wait
            }
            catch (AskTimeoutException)
            {
                last = "no answer in 3 s";
            }
        }
        throw new TimeoutException($"{request} got no {typeof(T).Name} in {patience}; last answer: {last}");
    }
}
