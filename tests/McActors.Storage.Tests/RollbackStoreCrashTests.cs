using McActors.Storage.Rollback;
using Xunit.Abstractions;
using McActors.Storage.RollbackLogs;
using McActors.Storage.Tests.Support;

namespace McActors.Storage.Tests;

/// <summary>
/// Crashes at random instants, inside the write-ahead step and inside a rollback, sometimes with
/// a log then cut at a random byte. Recover() and a rollback must then give the checkpoint's image,
/// or say the image cannot be vouched for — and may say so only when durable records were lost.
/// </summary>
public sealed class RollbackStoreCrashTests(ITestOutputHelper output)
{
    private sealed class SimulatedCrash : Exception;

    [Fact]
    public void After_a_crash_at_any_instant_recovery_restores_the_checkpoint_or_refuses()
    {
        int recovered = 0, refused = 0, cuts = 0;
        Seeds.Run(300, seed =>
        {
            var random = new Random(seed);
            using var dir = new TempDirectory("crash");
            var descriptor = RandomOperations.RandomVolume(random, out var options);
            var model = new ReferenceVolume((int)descriptor.SizeBytes);
            var ops = new RandomOperations(random, model, (int)descriptor.SizeBytes);
            var store = RollbackStore.Create(dir.Path, descriptor, options);

            // Run until the crash hook fires at a random one of the instants it is offered.
            var countdown = random.Next(1, 60);
            store.CrashHook = point =>
            {
                if (--countdown == 0)
                {
                    output.WriteLine($"crash at {point}, epoch {model.Epoch}, prepared {model.Prepared}, committed {model.Committed}");
                    throw new SimulatedCrash();
                }
            };
            try
            {
                for (var i = 0; i < 200; i++)
                    ops.Step(store);
            }
            catch (SimulatedCrash)
            {
            }
            store.Abandon();
            var rollbackTarget = ops.RollbackInFlight;

            // Sometimes the crash also tore the newest log: cut it at a random byte.
            var cut = random.Next(2) == 0 ? CutNewestLog(dir.Path, descriptor, random) : null;
            if (cut is not null)
                cuts++;
            output.WriteLine($"cut {cut}, rollback in flight {rollbackTarget}, block size {descriptor.BlockSize}");

            try
            {
                using var reopened = RollbackStore.Recover(dir.Path, options);
                Assert.Equal(model.Committed, reopened.CommittedEpoch);
                // A crash inside a rollback must be finished by rolling back to the same checkpoint;
                // otherwise any prepared checkpoint the coordinator may have committed is a valid target.
                var target = rollbackTarget ?? random.Next((int)model.Committed, (int)model.Prepared + 1);
                if (rollbackTarget is null)
                    Assert.Equal(model.Prepared, reopened.PreparedEpoch);
                ops.RollbackTo(reopened, target);
                // The recovered store goes on working: more epochs, then another rollback.
                for (var i = random.Next(5, 30); i > 0; i--)
                    ops.Step(reopened);
                ops.Rollback(reopened, random);
                recovered++;
            }
            catch (CannotVouchException e)
            {
                // Refusing is right only when records the image depends on were lost.
                Assert.True(cut is { BelowDurable: true }, $"store refused without cause: {e.Message}");
                refused++;
            }
        }, output);
        if (Environment.GetEnvironmentVariable(Seeds.Variable) is null)
        {
            Assert.True(recovered > 100, $"only {recovered} crashes recovered ({refused} refused, {cuts} cut)");
            Assert.True(refused > 0, "no cut ever reached durable records: the refusal path went untested");
        }
    }

    [Fact]
    public void A_rollback_interrupted_at_any_log_and_run_again_gives_the_same_image()
    {
        Seeds.Run(80, seed =>
        {
            var random = new Random(seed);
            using var dir = new TempDirectory("rb-crash");
            var descriptor = RandomOperations.RandomVolume(random, out var options);
            var model = new ReferenceVolume((int)descriptor.SizeBytes);
            var ops = new RandomOperations(random, model, (int)descriptor.SizeBytes);
            var store = RollbackStore.Create(dir.Path, descriptor, options);
            for (var epoch = 0; epoch < 6; epoch++)
            {
                for (var w = random.Next(1, 8); w > 0; w--)
                    ops.Write(store);
                model.CloseEpoch();
            }
            store.Prepare(2);
            model.Prepare(2);
            store.Commit(1);
            model.Commit(1);
            var crashAfter = random.Next(1, 6);
            store.CrashHook = point =>
            {
                if (point == RollbackStore.CrashPoint.LogApplied && --crashAfter == 0)
                    throw new SimulatedCrash();
            };
            try
            {
                store.RollbackTo(1);
            }
            catch (SimulatedCrash)
            {
            }
            store.Abandon();
            using var reopened = RollbackStore.Recover(dir.Path, options);
            ops.RollbackTo(reopened, 1);
        }, output);
    }

    private sealed record Cut(string Path, long At, long DurableLength)
    {
        public bool BelowDurable => At < DurableLength;
    }

    /// <summary>Truncates the newest uncommitted log at a random byte (header included).</summary>
    private static Cut? CutNewestLog(string directory, Volume.VolumeDescriptor descriptor, Random random)
    {
        var newest = Directory.EnumerateFiles(Path.Combine(directory, RollbackStore.LogDirectoryName), "*.rblog")
            .Order(StringComparer.Ordinal).LastOrDefault();
        if (newest is null)
            return null;
        RollbackLogFormat.TryParseFileName(Path.GetFileName(newest), out var epoch);
        long durable;
        using (var log = RollbackLog.Open(newest, descriptor, epoch, writable: false))
            durable = log.DurableLength;
        var length = new FileInfo(newest).Length;
        // Half the time cut only the unsynced tail (a crash mid-append), else anywhere.
        var from = random.Next(2) == 0 && durable < length ? durable : 0;
        var at = from + (long)(random.NextDouble() * (length - from));
        using (var stream = new FileStream(newest, FileMode.Open, FileAccess.Write))
            stream.SetLength(at);
        return new Cut(newest, at, durable);
    }
}
