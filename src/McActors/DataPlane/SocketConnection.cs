using System.IO.Pipelines;
using System.Net.Sockets;

namespace McActors.DataPlane;

/// <summary>
/// A connected socket seen as two pipes, like Kestrel's socket transport: a receive loop fills
/// <see cref="Input"/>, a send loop drains <see cref="Output"/>. Frames written between two
/// send-loop iterations leave in one batch of large socket writes, and the receive side's
/// pipe bounds how much is read ahead of the consumer.
/// </summary>
internal sealed class SocketConnection : IAsyncDisposable
{
    private const int MinimumReadBytes = 64 << 10;
    private readonly Socket _socket;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private Task _receiveTask = Task.CompletedTask;
    private Task _sendTask = Task.CompletedTask;
    private int _disposed;

    public SocketConnection(Socket socket, DataPlaneOptions options)
    {
        _socket = socket;
        _socket.NoDelay = true; // we batch ourselves; Nagle would only delay acks and markers
        // The read-ahead limit must exceed the largest frame, or a frame bigger than it could never complete.
        var maxFrame = FrameCodec.HeaderSize + 64 + (long)options.MaxPayloadBytes + FrameCodec.ChecksumSize;
        var inputPause = maxFrame + options.SegmentBytes;
        _input = new Pipe(new PipeOptions(
            pauseWriterThreshold: inputPause,
            resumeWriterThreshold: inputPause / 2,
            minimumSegmentSize: options.SegmentBytes,
            useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(
            pauseWriterThreshold: options.SendBufferBytes,
            resumeWriterThreshold: options.SendBufferBytes / 2,
            minimumSegmentSize: options.SegmentBytes,
            useSynchronizationContext: false));
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output => _output.Writer;

    /// <summary>Completes when the send loop ended (output completed, or the socket failed).</summary>
    public Task SendCompletion => _sendTask;

    public void Start()
    {
        _receiveTask = Task.Run(ReceiveLoopAsync);
        _sendTask = Task.Run(SendLoopAsync);
    }

    private async Task ReceiveLoopAsync()
    {
        var writer = _input.Writer;
        Exception? error = null;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(MinimumReadBytes);
                var read = await _socket.ReceiveAsync(memory, SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                    break;
                writer.Advance(read);
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted)
                    break;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            error = new DataPlaneConnectionException($"data-plane connection lost while receiving: {e.Message}", e);
        }
        await writer.CompleteAsync(error).ConfigureAwait(false);
    }

    private async Task SendLoopAsync()
    {
        var reader = _output.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    var remaining = segment;
                    while (!remaining.IsEmpty)
                    {
                        var sent = await _socket.SendAsync(remaining, SocketFlags.None).ConfigureAwait(false);
                        remaining = remaining[sent..];
                    }
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                    break;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            error = new DataPlaneConnectionException($"data-plane connection lost while sending: {e.Message}", e);
        }
        await reader.CompleteAsync(error).ConfigureAwait(false);
        if (error is not null)
        {
            // A dead send side means a dead connection: wake the receive side too.
            Abort();
        }
    }

    /// <summary>
    /// Sends what is queued (e.g. a final error frame), half-closes, and waits up to
    /// <paramref name="timeout"/> for the peer to close before tearing the socket down.
    /// With <paramref name="inputAbandoned"/>, nobody reads <see cref="Input"/> any more and
    /// what still arrives is dropped; otherwise its reader goes on reading up to the peer's close.
    /// </summary>
    public async Task CloseAsync(TimeSpan timeout, bool inputAbandoned)
    {
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        try
        {
            await _sendTask.WaitAsync(timeout).ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Send);
            if (inputAbandoned)
            {
                await _input.Reader.CompleteAsync().ConfigureAwait(false);
                await DrainAsync().WaitAsync(timeout).ConfigureAwait(false);
            }
            else
            {
                await _receiveTask.WaitAsync(timeout).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is TimeoutException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            // Best effort: the peer is slow or gone; reset.
        }
        await DisposeAsync().ConfigureAwait(false);
    }

    private async Task DrainAsync()
    {
        await _receiveTask.ConfigureAwait(false);
        var scratch = new byte[4096];
        while (await _socket.ReceiveAsync(scratch, SocketFlags.None).ConfigureAwait(false) > 0)
        {
        }
    }

    /// <summary>Tears the socket down at once; both loops end.</summary>
    public void Abort()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Abort();
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        // Input's reader is its owner's to complete: the receive loop ends on its own once the socket is gone.
        await Task.WhenAll(_receiveTask, _sendTask).ConfigureAwait(false);
    }
}
