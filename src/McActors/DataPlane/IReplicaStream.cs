namespace McActors.DataPlane;

/// <summary>
/// The primary's ordered stream of frames to one secondary, windowed: a send completes once its
/// frame is queued (its data copied), and waits first while the window of unacknowledged bytes is
/// full, which is the back-pressure to the guest. <see cref="DataPlaneSender"/> is the TCP one;
/// tests put an in-memory one behind <see cref="IReplicaStreamConnector"/>. Sends must not overlap.
/// </summary>
public interface IReplicaStream : IAsyncDisposable
{
    /// <summary>Stream frames sent so far (sequenced and resync frames alike).</summary>
    long FramesSent { get; }

    /// <summary>Bytes sent (or queued) and not yet acknowledged.</summary>
    long OutstandingBytes { get; }

    /// <summary>Completes when the stream is disposed; faults when it fails.</summary>
    Task Completion { get; }

    ValueTask SendWriteAsync(long epoch, long sequence, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    ValueTask SendMarkerAsync(long epoch, long sequence, long writesInEpoch, long bytesInEpoch, CancellationToken cancellationToken = default);

    ValueTask SendGuestStateAsync(long epoch, long sequence, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken = default);

    /// <summary>One chunk of a resync copy, unsequenced, to this secondary only.</summary>
    ValueTask SendCopyAsync(long epoch, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default);

    /// <summary>The end of a resync copy: from checkpoint <paramref name="epoch"/> on, this secondary's image is the primary's.</summary>
    ValueTask SendSyncCompleteAsync(long epoch, CancellationToken cancellationToken = default);

    /// <summary>Completes when the secondary has handled the first <paramref name="frames"/> frames; throws if the stream fails first.</summary>
    Task WaitForFramesAcknowledgedAsync(long frames, CancellationToken cancellationToken = default);
}

/// <summary>Opens the primary's stream to the secondary listening at <paramref name="host"/>:<paramref name="port"/>, starting at <paramref name="firstSequence"/>.</summary>
public interface IReplicaStreamConnector
{
    Task<IReplicaStream> ConnectAsync(string host, int port, DataPlaneVolume volume, long generation, long firstSequence, DataPlaneOptions options);
}

/// <summary>The real connector: a TCP <see cref="DataPlaneSender"/> to the secondary's data-plane listener.</summary>
public sealed class TcpReplicaStreamConnector : IReplicaStreamConnector
{
    public static readonly TcpReplicaStreamConnector Instance = new();

    public async Task<IReplicaStream> ConnectAsync(string host, int port, DataPlaneVolume volume, long generation, long firstSequence, DataPlaneOptions options) =>
        await DataPlaneSender.ConnectAsync(host, port, volume, generation, firstSequence, options).ConfigureAwait(false);
}
