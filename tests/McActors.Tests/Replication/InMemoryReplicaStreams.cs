using System.Collections.Concurrent;
using McActors.DataPlane;

namespace McActors.Tests.Replication;

/// <summary>One frame an <see cref="InMemoryReplicaStream"/> took: 'W'rite, 'M'arker, guest 'S'tate, 'C'opy or sync-'D'one.</summary>
public sealed record StreamedFrame(char Kind, long Epoch, long Sequence, long Offset, int Length);

/// <summary>
/// A secondary's stream without a socket: it records every frame, and its window is a number of
/// frames the test sets (<see cref="Hold"/>): a send beyond it waits until <see cref="Release"/>,
/// or fails when the stream does (<see cref="Fail"/>). Acknowledges every frame it took.
/// </summary>
public sealed class InMemoryReplicaStream : IReplicaStream
{
    private readonly object _lock = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentQueue<StreamedFrame> _frames = new();
    private TaskCompletionSource? _room;
    private long? _window;
    private long _framesSent;

    public IReadOnlyList<StreamedFrame> Frames => [.. _frames];

    public IReadOnlyList<StreamedFrame> Writes => [.. _frames.Where(f => f.Kind == 'W')];

    /// <summary>True once the primary disposed this stream (it dropped the secondary or stopped).</summary>
    public bool Disposed => _completion.Task.IsCompleted;

    /// <summary>A send while a frame waits on the full window.</summary>
    public bool Waiting
    {
        get
        {
            lock (_lock)
                return _room is not null;
        }
    }

    public long FramesSent => Interlocked.Read(ref _framesSent);

    public long OutstandingBytes => Waiting ? 1 : 0;

    public Task Completion => _completion.Task;

    /// <summary>From now on the window holds <paramref name="frames"/> more frames; the send after them waits.</summary>
    public void Hold(long frames = 0)
    {
        lock (_lock)
            _window = frames;
    }

    /// <summary>The window opens for good: a waiting send completes.</summary>
    public void Release()
    {
        TaskCompletionSource? room;
        lock (_lock)
        {
            _window = null;
            room = _room;
            _room = null;
        }
        room?.TrySetResult();
    }

    /// <summary>The stream breaks: <see cref="Completion"/> faults and a waiting send fails.</summary>
    public void Fail(Exception error)
    {
        TaskCompletionSource? room;
        lock (_lock)
        {
            room = _room;
            _room = null;
        }
        room?.TrySetException(error);
        _completion.TrySetException(error);
    }

    public ValueTask SendWriteAsync(long epoch, long sequence, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        Take(new StreamedFrame('W', epoch, sequence, offset, data.Length));

    public ValueTask SendMarkerAsync(long epoch, long sequence, long writesInEpoch, long bytesInEpoch, CancellationToken cancellationToken = default) =>
        Take(new StreamedFrame('M', epoch, sequence, 0, 0));

    public ValueTask SendGuestStateAsync(long epoch, long sequence, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken = default) =>
        Take(new StreamedFrame('S', epoch, sequence, 0, blob.Length));

    public ValueTask SendCopyAsync(long epoch, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        Take(new StreamedFrame('C', epoch, 0, offset, data.Length));

    public ValueTask SendSyncCompleteAsync(long epoch, CancellationToken cancellationToken = default) =>
        Take(new StreamedFrame('D', epoch, 0, 0, 0));

    public Task WaitForFramesAcknowledgedAsync(long frames, CancellationToken cancellationToken = default) =>
        _completion.Task.IsFaulted ? _completion.Task : Task.CompletedTask;

    public ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(nameof(InMemoryReplicaStream)));
        return ValueTask.CompletedTask;
    }

    private ValueTask Take(StreamedFrame frame)
    {
        lock (_lock)
        {
            if (_completion.Task.IsCompleted)
                return ValueTask.FromException(new InvalidOperationException("the stream is closed"));
            _frames.Enqueue(frame);
            Interlocked.Increment(ref _framesSent);
            if (_window is not { } window)
                return ValueTask.CompletedTask;
            if (window > 0)
            {
                _window = window - 1;
                return ValueTask.CompletedTask;
            }
            _room = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return new ValueTask(_room.Task);
        }
    }
}

/// <summary>Connects the primary to in-memory secondaries by host name; a host with no stream refuses.</summary>
public sealed class InMemoryReplicaStreams : IReplicaStreamConnector
{
    private readonly ConcurrentDictionary<string, InMemoryReplicaStream> _streams = new();

    /// <summary>The stream the next connect to <paramref name="host"/> gets.</summary>
    public InMemoryReplicaStream Add(string host) => _streams[host] = new InMemoryReplicaStream();

    /// <summary>(generation, first sequence) of each connect, by host, in order.</summary>
    public ConcurrentQueue<(string Host, long Generation, long FirstSequence)> Connects { get; } = new();

    public Task<IReplicaStream> ConnectAsync(string host, int port, DataPlaneVolume volume, long generation, long firstSequence, DataPlaneOptions options)
    {
        Connects.Enqueue((host, generation, firstSequence));
        return _streams.TryGetValue(host, out var stream)
            ? Task.FromResult<IReplicaStream>(stream)
            : Task.FromException<IReplicaStream>(new DataPlaneConnectionException($"no secondary at {host}:{port}"));
    }
}
