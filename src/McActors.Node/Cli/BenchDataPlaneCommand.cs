using System.CommandLine;
using McActors.Node.Bench;

namespace McActors.Node.Cli;

/// <summary>
/// <c>mcactors bench dataplane [--json FILE] [--mib N]</c>: the write stream over the data plane
/// against the same stream over Akka.Remote, side by side in one run, 64 KiB writes, loopback.
/// </summary>
internal static class BenchDataPlaneCommand
{
    public static Command Create()
    {
        var json = BenchCommand.CreateJsonOption();
        var mib = new Option<int>("--mib") { Description = "MiB streamed per round over the data plane (Akka.Remote gets a quarter: it is much slower).", DefaultValueFactory = _ => 2048 };
        mib.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 16 or > 65536)
                r.AddError("--mib must be between 16 and 65536");
        });
        var command = new Command("dataplane", "Data-plane stream vs the same stream over Akka.Remote (64 KiB writes, loopback).") { json, mib };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var result = await ReplicationTransport.CompareAsync((long)parse.GetValue(mib) << 20, ReplicationTransport.DefaultRounds, output, cancel);
            var report = new BenchReport();
            result.AddTo(report);
            return BenchCommand.Finish(report, parse.GetValue(json), output);
        });
        return command;
    }
}
