using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace McActors.Storage.Io;

/// <summary>
/// fsync of a directory, so that a file created, renamed or unlinked in it survives a power loss.
/// .NET has no API for it; on Linux it is open(O_RDONLY|O_DIRECTORY) + fsync.
/// </summary>
public static partial class Durability
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000; // Linux x86_64 and arm64

    public static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
            return; // other platforms: the file-level fsyncs are all we can do
        var fd = Open(directory, ORdOnly | ODirectory);
        if (fd < 0)
            throw new IOException($"cannot open directory {directory} to sync it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            if (Fsync(fd) != 0)
                throw new IOException($"fsync of directory {directory} failed (errno {Marshal.GetLastPInvokeError()})");
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>
    /// Starts writeback of a file's dirty pages without waiting for it (Linux sync_file_range
    /// with SYNC_FILE_RANGE_WRITE), so that a later fsync finds most of the work done. Not a
    /// durability guarantee on its own; elsewhere a no-op.
    /// </summary>
    public static void StartWriteback(SafeFileHandle file) => StartWriteback(file, 0, 0);

    /// <summary>
    /// <see cref="StartWriteback(SafeFileHandle)"/> of the bytes [offset, offset + length) only;
    /// a length of 0 means to the end of the file.
    /// </summary>
    public static void StartWriteback(SafeFileHandle file, long offset, long length)
    {
        if (!OperatingSystem.IsLinux())
            return;
        const uint syncFileRangeWrite = 2;
        // Best effort: a failure here only means the next fsync does all the work.
        _ = SyncFileRange((int)file.DangerousGetHandle(), offset, length, syncFileRangeWrite);
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
