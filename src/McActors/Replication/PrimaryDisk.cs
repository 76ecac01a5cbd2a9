using McActors.Configuration;
using McActors.Protocol;
using McActors.Storage;
using McActors.Storage.Volume;

namespace McActors.Replication;

/// <summary>
/// The primary's disk: its live image and, while no secondary holds the checkpoints, the rollback
/// store it keeps them in alone (<see cref="PrimaryAloneCheckpoints"/>; writes then go through the
/// store's write-ahead queue). Every method may throw a disk error (<see cref="IsDiskError"/>),
/// which the primary treats as fatal: the image can no longer be trusted. Not thread-safe.
/// </summary>
public sealed class PrimaryDisk : IDisposable
{
    private readonly string _directory;
    private readonly VolumeSpec _volume;
    private readonly McActorsSettings _settings;
    private PrimaryAloneCheckpoints? _alone;
    private bool _lastCommitOnNoSecondary;

    private PrimaryDisk(string directory, VolumeSpec volume, McActorsSettings settings, VolumeImage image)
    {
        _directory = directory;
        _volume = volume;
        _settings = settings;
        Image = image;
    }

    /// <summary>Opens (or creates) the image of <paramref name="volume"/> in <paramref name="directory"/>.</summary>
    public static PrimaryDisk Open(string directory, VolumeSpec volume, McActorsSettings settings) =>
        new(directory, volume, settings, PrimaryVolumeFiles.OpenOrCreate(directory, volume, settings.StoreFaults));

    /// <summary>The live image (read it only after <see cref="DrainWriteAhead"/> while keeping checkpoints alone).</summary>
    public VolumeImage Image { get; }

    /// <summary>True while the primary keeps its checkpoints in its own store.</summary>
    public bool KeepsCheckpointsAlone => _alone is not null;

    /// <summary>An I/O error, or the storage engine's own (a store that can no longer vouch, an epoch out of order).</summary>
    public static bool IsDiskError(Exception e) => e is IOException or StorageException;

    public void Write(long epoch, long offset, ReadOnlySpan<byte> data)
    {
        if (_alone is not null)
            _alone.Write(epoch, offset, data);
        else
            Image.Write(offset, data);
    }

    public void Read(long offset, Span<byte> buffer)
    {
        if (_alone is not null)
            _alone.Read(offset, buffer);
        else
            Image.Read(offset, buffer);
    }

    /// <summary>Writes the store's queued writes to the image, so that reading the image file sees them.</summary>
    public void DrainWriteAhead() => _alone?.Drain();

    /// <summary>True if checkpoint <paramref name="epoch"/> is durable here already (prepared in the store kept alone).</summary>
    public bool DurableAt(long epoch) => _alone?.Prepared >= epoch;

    /// <summary>
    /// A primary that no secondary follows (<paramref name="followed"/> false, or the last commit had
    /// none) is the only holder of the checkpoint it just closed: it keeps it on its own disk
    /// (attaching a rollback store at the first one, preparing each later one) before the
    /// coordinator hears that it closed, so before it can commit. Once a secondary follows again
    /// (in sync, and the last commit had it), its prepare holds the new checkpoints; the store
    /// stays, unprepared, until a commit covers the ones only it holds. True if the store was
    /// attached by this call (the primary logs it).
    /// </summary>
    public bool KeepIfAlone(long epoch, byte[]? state, bool followed)
    {
        if (!_lastCommitOnNoSecondary && followed)
            return false;
        if (_alone is not null)
        {
            _alone.Prepare(epoch, state);
            return false;
        }
        // Through the primary's own image first: an error the background fsync already took
        // (sticky there) would not be reported to the store's newly opened file.
        Image.Flush();
        _alone = PrimaryAloneCheckpoints.Attach(_directory, _volume, epoch, state, _settings.StoreOptions);
        return true;
    }

    /// <summary>
    /// The commit of a checkpoint the primary keeps alone drops its logs; one a secondary prepared
    /// ends keeping them once it covers every checkpoint prepared here (until then, losing that
    /// secondary would leave the later ones on this disk only). <paramref name="state"/> is the
    /// checkpoint's guest state, if the ledger still holds it. True if the store was detached by
    /// this call (the primary logs it).
    /// </summary>
    public bool CommitIfAlone(Commit m, byte[]? state)
    {
        _lastCommitOnNoSecondary = m.Secondaries == 0;
        if (_alone is null)
            return false;
        if (m.Secondaries == 0 && m.Epoch > _alone.Prepared)
        {
            // Closed while a secondary followed, committed once it was lost: only this disk holds
            // it now, so it is prepared here late.
            _alone.Prepare(m.Epoch, state);
        }
        if (m.Secondaries == 0 || m.Epoch < _alone.Prepared)
        {
            _alone.Commit(m.Epoch);
            return false;
        }
        _alone.Detach(_directory);
        _alone = null;
        return true;
    }

    /// <summary>Saves the stopped guest's state of checkpoint <paramref name="epoch"/> beside the image (kept past later commits); returns its path.</summary>
    public string SaveStoppedState(long epoch, byte[] state)
    {
        var path = PrimaryVolumeFiles.SaveState(_directory, epoch, state);
        _alone?.Keep(epoch);
        return path;
    }

    /// <summary>Closes the store kept alone (which may throw a disk error), then the image.</summary>
    public void Dispose()
    {
        try
        {
            _alone?.Dispose();
        }
        finally
        {
            Image.Dispose();
        }
    }
}
