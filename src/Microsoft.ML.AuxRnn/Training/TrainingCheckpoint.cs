using Microsoft.ML.AuxRnn.Model;
using TorchSharp.Modules;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>Where a training run stands: what a checkpoint stores besides the weights.</summary>
internal sealed class TrainingProgress
{
    /// <summary>Epochs finished, over both phases.</summary>
    public int EpochsDone { get; set; }

    /// <summary>Optimizer steps taken, over both phases (drives scheduled sampling).</summary>
    public long GlobalStep { get; set; }

    /// <summary>Best validation accuracy so far, or null.</summary>
    public double? BestAccuracy { get; set; }

    /// <summary>1-based epoch of <see cref="BestAccuracy"/>.</summary>
    public int BestEpoch { get; set; }

    public List<EpochReport> Reports { get; } = new();
}

/// <summary>
/// One file, <c>checkpoint.bin</c> in <see cref="AuxLstmClassifierOptions.CheckpointFolder"/>, rewritten after every
/// epoch: progress and reports, network and decoder weights, optimizer state and the best epoch's weights. It is
/// written to a temporary file and renamed over the previous one, so a crash leaves the old or the new checkpoint,
/// never a torn one. Random state needs no saving: every epoch's random sources are seeded from (seed, epoch).
/// </summary>
internal static class TrainingCheckpoint
{
    public const string FileName = "checkpoint.bin";
    private const string Magic = "AUXRNN-CHECKPOINT";
    private const int Version = 1;

    public static string PathIn(string folder) => Path.Combine(folder, FileName);

    /// <summary>
    /// Deletes the <c>checkpoint.bin.&lt;pid&gt;.tmp</c> files of <paramref name="folder"/> that no running save
    /// holds: those of processes that are gone (killed mid-save), and those whose process id now belongs to another
    /// process but whose file no one holds locked (a save holds its file open exclusively). This process's own are
    /// left alone. Returns the files removed.
    /// </summary>
    public static IReadOnlyList<string> RemoveStaleTemporaries(string folder)
    {
        var removed = new List<string>();
        string[] candidates;
        try
        {
            candidates = Directory.GetFiles(folder, FileName + ".*.tmp");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return removed;
        }
        foreach (string path in candidates)
        {
            string middle = Path.GetFileName(path)[(FileName.Length + 1)..^".tmp".Length];
            if (!int.TryParse(middle, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid)
                || pid == Environment.ProcessId)
                continue;
            try
            {
                if (IsRunning(pid))
                {
                    // Perhaps a save in progress, perhaps a reused id: only a file no one holds is stale.
                    using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                }
                File.Delete(path);
                removed.Add(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Held by a running save, or not ours to delete: leave it.
            }
        }
        return removed;
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    public static void Save(string folder, string fingerprint, TrainingProgress progress, AuxLstmNetwork network,
        AuxiliaryDecoder? decoder, OptimizerHelper optimizer, bool optimizerPretraining, AuxLstmNetwork? best)
    {
        Directory.CreateDirectory(folder);
        string target = PathIn(folder);
        string temp = target + $".{Environment.ProcessId}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            using (var writer = new BinaryWriter(stream))
            {
                writer.Write(Magic);
                writer.Write(Version);
                writer.Write(fingerprint);
                writer.Write(progress.EpochsDone);
                writer.Write(progress.GlobalStep);
                writer.Write(progress.BestAccuracy.HasValue);
                writer.Write(progress.BestAccuracy ?? 0);
                writer.Write(progress.BestEpoch);
                writer.Write(progress.Reports.Count);
                foreach (var r in progress.Reports)
                    WriteReport(writer, r);

                network.save(writer);
                writer.Write(decoder is not null);
                decoder?.save(writer);

                using (var optimizerState = new MemoryStream())
                {
                    using (var optimizerWriter = new BinaryWriter(optimizerState, System.Text.Encoding.UTF8, leaveOpen: true))
                        optimizer.save_state_dict(optimizerWriter);
                    writer.Write(optimizerPretraining);
                    writer.Write(optimizerState.Length);
                    writer.Write(optimizerState.GetBuffer(), 0, (int)optimizerState.Length);
                }

                writer.Write(best is not null);
                best?.save(writer);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, target, overwrite: true);
        }
        catch (Exception e)
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
            }
            if (e is IOException or UnauthorizedAccessException)
                throw new IOException(
                    $"Saving the checkpoint of epoch {progress.EpochsDone} to '{target}' failed ({e.Message}); " +
                    (File.Exists(target) ? "the previous checkpoint there is unchanged, and a later Fit resumes from it." : "no earlier checkpoint exists."), e);
            throw;
        }
    }

    /// <summary>
    /// Restores a run from <paramref name="folder"/>'s checkpoint into <paramref name="network"/> and
    /// <paramref name="decoder"/>; returns null when there is none.
    /// </summary>
    /// <param name="folder">The checkpoint folder.</param>
    /// <param name="fingerprint">What the saved run must match (else the load fails, naming the folder).</param>
    /// <param name="network">Receives the saved network weights.</param>
    /// <param name="decoder">Receives the saved decoder weights.</param>
    /// <param name="createOptimizer">Builds the optimizer of a phase (true: pre-training).</param>
    /// <param name="nextEpochPretrains">Whether a given 0-based epoch pre-trains.</param>
    /// <param name="createBest">Builds an empty network for the best weights.</param>
    public static (TrainingProgress Progress, OptimizerHelper Optimizer, bool OptimizerPretraining, AuxLstmNetwork? Best)? TryLoad(
        string folder, string fingerprint, AuxLstmNetwork network, AuxiliaryDecoder? decoder,
        Func<bool, OptimizerHelper> createOptimizer, Func<int, bool> nextEpochPretrains, Func<AuxLstmNetwork> createBest)
    {
        string path = PathIn(folder);
        if (!File.Exists(path))
            return null;
        try
        {
            using var stream = File.OpenRead(path);
            using var reader = new BinaryReader(stream);
            if (reader.ReadString() != Magic || reader.ReadInt32() != Version)
                throw new InvalidDataException("not an AuxLstm checkpoint of this version");
            string saved = reader.ReadString();
            if (saved != fingerprint)
                throw new InvalidOperationException(
                    $"{nameof(AuxLstmClassifierOptions)}.{nameof(AuxLstmClassifierOptions.CheckpointFolder)} '{folder}' holds a checkpoint of a different " +
                    $"training run (saved: {saved}; now: {fingerprint}). Use an empty folder, or the same data and options to resume.");

            var progress = new TrainingProgress { EpochsDone = reader.ReadInt32(), GlobalStep = reader.ReadInt64() };
            bool hasBest = reader.ReadBoolean();
            double bestAccuracy = reader.ReadDouble();
            progress.BestAccuracy = hasBest ? bestAccuracy : null;
            progress.BestEpoch = reader.ReadInt32();
            int reports = reader.ReadInt32();
            if (reports < 0 || reports > 1_000_000)
                throw new InvalidDataException($"{reports} epoch reports");
            for (int i = 0; i < reports; i++)
                progress.Reports.Add(ReadReport(reader));

            network.load(reader);
            bool hasDecoder = reader.ReadBoolean();
            if (hasDecoder != decoder is not null)
                throw new InvalidDataException("the checkpoint's auxiliary decoder does not match the options");
            decoder?.load(reader);

            // One optimizer serves both phases (its running averages carry across the switch); the flag is kept
            // in the format for files written before.
            bool optimizerPretraining = reader.ReadBoolean();
            long optimizerBytes = reader.ReadInt64();
            if (optimizerBytes < 0 || optimizerBytes > stream.Length - stream.Position)
                throw new InvalidDataException("truncated optimizer state");
            bool pretrainNext = nextEpochPretrains(progress.EpochsDone);
            var optimizer = createOptimizer(pretrainNext);
            long end = stream.Position + optimizerBytes;
            optimizer.load_state_dict(reader);
            stream.Position = end;

            AuxLstmNetwork? best = null;
            if (reader.ReadBoolean())
            {
                best = createBest();
                best.load(reader);
            }
            return (progress, optimizer, pretrainNext, best);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or ArgumentException)
        {
            throw new InvalidDataException($"The checkpoint '{path}' is corrupt or incompatible: {e.Message}", e);
        }
    }

    private static void WriteReport(BinaryWriter writer, EpochReport r)
    {
        writer.Write(r.Epoch);
        writer.Write(r.Pretraining);
        writer.Write(r.SupervisedLoss);
        writer.Write(r.AuxiliaryLoss);
        writer.Write(r.TrainAccuracy);
        writer.Write(r.ValidationAccuracy.HasValue);
        writer.Write(r.ValidationAccuracy ?? 0);
        writer.Write(r.Elapsed.Ticks);
        writer.Write(r.LearningRate);
        writer.Write(r.SamplingProbability);
    }

    private static EpochReport ReadReport(BinaryReader reader)
    {
        int epoch = reader.ReadInt32();
        bool pretraining = reader.ReadBoolean();
        double supervised = reader.ReadDouble(), auxiliary = reader.ReadDouble(), accuracy = reader.ReadDouble();
        bool hasValidation = reader.ReadBoolean();
        double validation = reader.ReadDouble();
        var elapsed = TimeSpan.FromTicks(reader.ReadInt64());
        return new EpochReport(epoch, pretraining, supervised, auxiliary, accuracy, hasValidation ? validation : null, elapsed)
        {
            LearningRate = reader.ReadDouble(),
            SamplingProbability = reader.ReadDouble(),
        };
    }
}
