using System.Runtime.InteropServices;

namespace McActors.Tests.Replication;

/// <summary>
/// A named pipe (Linux FIFO) where the code under test will create a file: its writer's open
/// blocks until <see cref="WaitForWriterAsync"/>'s reader opens the other end, and a write larger
/// than the pipe's buffer (64 KiB) then blocks inside the write until <see cref="Release"/> drains
/// it (<see cref="ReplaceWith"/> first, so that the path names a regular file once it is released).
/// A disk stalled at an exact instant, so that a test can run something else meanwhile.
/// </summary>
internal sealed class StalledFile : IDisposable
{
    private const int ORdOnly = 0;
    private readonly string _path;
    private int _reader = -1;
    private bool _replaced;

    private StalledFile(string path) => _path = path;

    /// <summary>Makes the FIFO at <paramref name="path"/> (which must not exist).</summary>
    public static StalledFile At(string path)
    {
        if (MkFifo(path, 0x180) != 0) // 0600
            throw new IOException($"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()})");
        return new StalledFile(path);
    }

    /// <summary>Completes once the writer has opened the file: it is inside its write from then on.</summary>
    public Task WaitForWriterAsync() => Task.Run(() =>
    {
        var fd = Open(_path, ORdOnly);
        if (fd < 0)
            throw new IOException($"open {_path} failed (errno {Marshal.GetLastPInvokeError()})");
        _reader = fd;
    });

    /// <summary>
    /// Puts a regular file with <paramref name="content"/> at the path (renamed over the FIFO): the
    /// stalled writer goes on writing into the pipe it opened, and whoever opens the path next
    /// finds what it will have written. Only after <see cref="WaitForWriterAsync"/>.
    /// </summary>
    public void ReplaceWith(byte[] content)
    {
        var temp = _path + ".replacement";
        File.WriteAllBytes(temp, content);
        File.Move(temp, _path, overwrite: true);
        _replaced = true;
    }

    /// <summary>Reads everything the writer writes until it closes; returns the bytes.</summary>
    public byte[] Release()
    {
        var all = new MemoryStream();
        var buffer = new byte[64 << 10];
        while (true)
        {
            var n = Read(_reader, buffer, buffer.Length);
            if (n < 0)
                throw new IOException($"read {_path} failed (errno {Marshal.GetLastPInvokeError()})");
            if (n == 0)
                break;
            all.Write(buffer, 0, (int)n);
        }
        Dispose();
        return all.ToArray();
    }

    public void Dispose()
    {
        if (_reader >= 0)
            _ = Close(_reader);
        _reader = -1;
        if (!_replaced)
            File.Delete(_path);
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint Read(int fd, byte[] buffer, nint count);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);
}
