using System.Security.Cryptography;

namespace McActors.Storage.Tests.Support;

/// <summary>Snapshots of every file under a directory, to prove that a refused operation changed nothing.</summary>
public static class StoreFiles
{
    public static Dictionary<string, string> Fingerprint(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(p => Path.GetRelativePath(directory, p), p => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(p))));

    public static void FlipByte(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x5A));
    }
}
