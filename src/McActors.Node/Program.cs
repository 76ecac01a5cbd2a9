using System.CommandLine;
using McActors.Node.Cli;

var root = new RootCommand("mcactors: a node of McActors, a checkpoint-replicated block device.")
{
    DemoCommand.Create(),
    NodeCommand.Create(),
    UpCommand.Create(),
    BenchCommand.Create(),
    ChaosCommand.Create(),
};
var invocation = new InvocationConfiguration
{
    // After Ctrl+C / SIGTERM a command gets this long to stop and clean up (a bench closes stores
    // and removes GiB-sized files; an fsync under way cannot be interrupted) before the process ends.
    ProcessTerminationTimeout = TimeSpan.FromSeconds(30),
};
return await root.Parse(args).InvokeAsync(invocation);
