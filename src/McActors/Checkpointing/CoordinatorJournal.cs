using Akka.Configuration;
using Akka.Persistence.Sql;

namespace McActors.Checkpointing;

/// <summary>
/// Points the coordinator's SQL journal and snapshot store (hocon/persistence-sqlite.conf) at one
/// SQLite file. Every node that may host the singleton must name the same file, by an absolute
/// path: a relative one would follow each process's working directory and split the journal.
/// </summary>
public static class CoordinatorJournal
{
    public const string JournalPath = "akka.persistence.journal.sql";
    public const string SnapshotStorePath = "akka.persistence.snapshot-store.sql";

    /// <summary>
    /// <paramref name="config"/> with both connection strings set to <paramref name="databasePath"/>
    /// and Akka.Persistence.Sql's defaults beneath (the plugin classes and table layout are not in
    /// our hocon files; PEERS.md: without them the plugin does not start).
    /// </summary>
    public static Config Configure(Config config, string databasePath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        var full = Path.GetFullPath(databasePath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var connection = Quote(ConnectionString(full));
        var overrides = ConfigurationFactory.ParseString(
            $"""
            {JournalPath}.connection-string = {connection}
            {SnapshotStorePath}.connection-string = {connection}
            """);
        return overrides.WithFallback(config).WithFallback(SqlPersistence.DefaultConfiguration);
    }

    /// <summary>
    /// The connection string for one database file. Pooling stays on: SQLite locks per
    /// transaction, not per open handle, so a pooled handle in a process that lost the singleton
    /// does not block the process that gained it.
    /// </summary>
    public static string ConnectionString(string absolutePath) => $"Data Source={absolutePath}";

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
