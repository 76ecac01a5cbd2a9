using System.CommandLine;
using McActors.Node.Cli;

var root = new RootCommand("mcactors: a node of McActors, a checkpoint-replicated block device.")
{
    BenchCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
