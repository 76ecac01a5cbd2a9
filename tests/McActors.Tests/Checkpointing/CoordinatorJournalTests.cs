using Akka.Configuration;
using McActors.Checkpointing;
using Microsoft.Data.Sqlite;

namespace McActors.Tests.Checkpointing;

public sealed class CoordinatorJournalTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mcactors-journal-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void The_journal_file_is_put_in_WAL_mode_and_its_connections_commit_with_a_full_fsync()
    {
        var path = Path.Combine(_directory, "coordinator.db");
        CoordinatorJournal.SetJournalMode(path, "WAL", TimeSpan.FromSeconds(5));

        // Any later connection (the persistence plugin's too) sees the file's mode and SQLite's default synchronous.
        using var connection = new SqliteConnection(CoordinatorJournal.ConnectionString(path));
        connection.Open();
        Assert.Equal("wal", Pragma(connection, "journal_mode"));
        // 2 = FULL: a WAL commit is fsynced before it returns, so it survives a power loss, not only a kill.
        Assert.Equal(2L, Pragma(connection, "synchronous"));
    }

    [Theory]
    [InlineData("MEMORY")]
    [InlineData("wal; DROP TABLE journal")]
    public void A_journal_mode_that_is_not_durable_or_not_a_mode_is_refused_naming_the_key(string mode)
    {
        var e = Assert.Throws<ConfigurationException>(() => CoordinatorJournal.SetJournalMode(Path.Combine(_directory, "x.db"), mode, TimeSpan.FromSeconds(1)));
        Assert.Contains("mcactors.coordinator.sqlite.journal-mode", e.Message);
    }

    private static object? Pragma(SqliteConnection connection, string name)
    {
        using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA {name};";
        return command.ExecuteScalar();
    }
}
