namespace McActors.Samples.KeyValue.Tests;

/// <summary>README's "Extend it" section shows the sample's own code, not a copy that drifted.</summary>
public sealed class ReadmeTests
{
    [Theory]
    [InlineData("src/Samples/McActors.Samples.KeyValue/KeyValueNode.cs")]
    [InlineData("src/Samples/McActors.Samples.KeyValue.Node/Program.cs")]
    [InlineData("tests/McActors.Samples.KeyValue.Tests/KeyValueConformanceTests.cs")]
    public void The_readme_shows_the_sample_file_verbatim(string path)
    {
        var root = RepositoryRoot();
        var readme = File.ReadAllText(Path.Combine(root, "README.md")).ReplaceLineEndings("\n");
        var code = File.ReadAllText(Path.Combine(root, path)).ReplaceLineEndings("\n").TrimEnd('\n');
        Assert.True(readme.Contains($"```csharp\n{code}\n```", StringComparison.Ordinal), $"README.md does not show {path} as it is; paste it again");
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "McActors.sln")))
                return dir.FullName;
        throw new DirectoryNotFoundException($"no McActors.sln above {AppContext.BaseDirectory}");
    }
}
