using Akka.Configuration;

namespace McActors.Configuration;

/// <summary>
/// Loads the node's configuration: every <c>hocon/*.conf</c> file shipped beside the binaries (the
/// deployment's choices: cluster, remoting, journal) over the library's defaults
/// (<see cref="McActorsSettings.DefaultConfig"/>), with <c>key=value</c> overrides from the command line on top. A bad file or override throws
/// a <see cref="ConfigurationException"/> naming the file or the key.
/// </summary>
public static class HoconFiles
{
    public const string FolderName = "hocon";

    public static string DefaultFolder => Path.Combine(AppContext.BaseDirectory, FolderName);

    public static Config Load(IEnumerable<string>? overrides = null, string? folder = null)
    {
        folder ??= DefaultFolder;
        if (!Directory.Exists(folder))
            throw new ConfigurationException($"configuration folder {folder} is missing");
        var config = Config.Empty;
        foreach (var file in Directory.EnumerateFiles(folder, "*.conf").Order(StringComparer.Ordinal))
        {
            try
            {
                config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(file)));
            }
            catch (Exception e) when (e is not ConfigurationException)
            {
                throw new ConfigurationException($"cannot parse {file}: {e.Message}");
            }
        }
        return WithOverrides(config.WithFallback(McActorsSettings.DefaultConfig), overrides ?? []);
    }

    /// <summary>Applies <c>key=value</c> pairs (HOCON syntax for the value) over a configuration.</summary>
    public static Config WithOverrides(Config config, IEnumerable<string> overrides)
    {
        foreach (var pair in overrides)
        {
            var eq = pair.IndexOf('=');
            if (eq <= 0)
                throw new ConfigurationException($"override '{pair}' is not of the form key=value");
            var key = pair[..eq].Trim();
            var value = pair[(eq + 1)..].Trim();
            try
            {
                config = ConfigurationFactory.ParseString($"{key} = {value}").WithFallback(config);
            }
            catch (Exception e) when (e is not ConfigurationException)
            {
                throw new ConfigurationException($"override of {key}: cannot parse '{value}': {e.Message}");
            }
        }
        return config;
    }

    /// <summary>A library's embedded <c>reference.conf</c> (resource <paramref name="name"/> of <paramref name="assembly"/>).</summary>
    public static Config FromResource(System.Reflection.Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new ConfigurationException($"{name} is not embedded in {assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }
}
