using Akka.Configuration;
using Akka.Persistence.Sql;
using Microsoft.Data.Sqlite;

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

    /// <summary>
    /// Puts the SQLite file at <paramref name="databasePath"/> in <paramref name="journalMode"/>
    /// (mcactors.coordinator.sqlite-journal-mode). The mode is a property of the file, so one
    /// connection setting it covers every later connection, the plugin's included. WAL commits with
    /// one fsync (of the log) instead of DELETE's three (journal, database, directory), which is most
    /// of the coordinator's persist time; with SQLite's default synchronous=FULL a commit is still on
    /// disk when it returns, across a process kill and a power loss alike.
    /// </summary>
    public static void SetJournalMode(string databasePath, string journalMode, TimeSpan busyTimeout)
    {
        if (!JournalModes.Contains(journalMode, StringComparer.OrdinalIgnoreCase))
            throw new ConfigurationException($"mcactors.coordinator.sqlite.journal-mode = {journalMode}: not one of {string.Join(", ", JournalModes)}");
        var full = Path.GetFullPath(databasePath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var builder = new SqliteConnectionStringBuilder(ConnectionString(full))
        {
            // Nodes start together; switching the mode takes a lock another node may hold for a moment.
            DefaultTimeout = Math.Max(1, (int)Math.Ceiling(busyTimeout.TotalSeconds)),
            Pooling = false,
        };
        using var connection = new SqliteConnection(builder.ConnectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA journal_mode={journalMode};";
        var mode = command.ExecuteScalar() as string;
        if (!string.Equals(mode, journalMode, StringComparison.OrdinalIgnoreCase))
            throw new ConfigurationException($"{full}: journal mode {journalMode} asked, SQLite kept {mode}");
    }

    /// <summary>SQLite's journal modes that keep a commit on disk once it returns (MEMORY and OFF do not).</summary>
    private static readonly string[] JournalModes = ["WAL", "DELETE", "TRUNCATE", "PERSIST"];

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
