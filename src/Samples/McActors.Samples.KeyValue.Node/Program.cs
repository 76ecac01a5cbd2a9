// A custom McActors node: a replica whose guest is the key-value store, or an arbiter. Run three:
//   dotnet run --project src/Samples/McActors.Samples.KeyValue.Node -- --McActors:Kind=Arbiter \
//     --McActors:Port=4053 --McActors:DataDirectory=/tmp/kv/arbiter
//   ... --McActors:Kind=Replica --McActors:Port=4054 --McActors:Seeds=127.0.0.1:4053 --McActors:DataDirectory=/tmp/kv/r1
//   ... --McActors:Kind=Replica --McActors:Port=4055 --McActors:Seeds=127.0.0.1:4053 --McActors:DataDirectory=/tmp/kv/r2
// (or the same keys in appsettings.json / MCACTORS__... environment variables: it is a Generic Host).
using McActors.Hosting;
using McActors.Samples.KeyValue;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddKeyValueNode(NodeOptions.From(builder.Configuration.GetSection("McActors")));
await builder.Build().RunAsync();
