using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.AuxRnn.Datasets;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>
/// Issue #10's precision measurement: the training step of the r-LSTM, the p-LSTM and the truncated LSTM at the paper's MNIST
/// setting (784 steps of 256-level pixels, batch 128, 128 cells, truncation 300, one 600-step segment) in float32 and
/// in bfloat16 mixed precision, side by side in one process, with the peak resident memory of each.
/// </summary>
/// <remarks>
/// <c>--precision DATA_ROOT [--batches B] [--threads T] [--setting r-lstm:float32 (or p-lstm:…, lstm:…)] [--decoder-groups G]</c>: each setting
/// trains 1 warm-up batch and then B timed batches (default 6) through the public estimator (an internal cap on
/// mini-batches ends the epoch); --setting measures one setting, --decoder-groups sets the decoder calls per batch.
/// </remarks>
internal static class PrecisionBench
{
    public static void Run(string dataRoot, int batches, int threads, string? only = null, int? decoderGroups = null, bool decoderOnly = false)
    {
        const int Batch = 128;
        var ml = new MLContext(seed: 1);
        var train = ml.Data.Cache(ml.Data.TakeRows(AuxRnnDatasets.LoadMnist(ml, Path.Combine(dataRoot, "mnist", "train-images-idx3-ubyte.gz"),
            Path.Combine(dataRoot, "mnist", "train-labels-idx1-ubyte.gz"), null), Batch * (batches + 1)));
        string F(double v, string format = "F2") => v.ToString(format, CultureInfo.InvariantCulture);
        if (only is null)
        {
            Console.WriteLine($"commit {Measure.Commit()}, {threads} threads, bfloat16 unit: {Training.MixedPrecision.CpuBFloat16Unit() ?? "none"}, decoder groups {decoderGroups?.ToString(CultureInfo.InvariantCulture) ?? "default"}");
            Console.WriteLine("| model | precision | s per step | bfloat16 / float32 | peak RSS MiB |");
            Console.WriteLine("|---|---|---|---|---|");
        }
        foreach (var loss in new[] { AuxiliaryLoss.Reconstruct, AuxiliaryLoss.Predict, AuxiliaryLoss.None })
        {
            double? float32Step = null;
            foreach (var precision in new[] { ComputePrecision.Float32, ComputePrecision.BFloat16 })
            {
                Training.MixedPrecision.KeepMainNetworkInFloat32 = decoderOnly;
                // --setting r-lstm:bfloat16 measures one setting (one process per setting: peaks are then not inflated by
                // memory an earlier setting left with the allocator).
                string name = $"{Name(loss).ToLowerInvariant()}:{precision.ToString().ToLowerInvariant()}";
                if (only is not null && !string.Equals(only, name, StringComparison.OrdinalIgnoreCase))
                    continue;
                var options = new AuxLstmClassifierOptions
                {
                    AuxiliaryLoss = loss,
                    InputLevels = 256,
                    Epochs = 1,
                    BatchSize = Batch,
                    Seed = 1,
                    NumberOfThreads = threads,
                    Precision = precision,
                };
                // Warm-up: JIT, libtorch's kernels for these shapes, the LSTM kernel check.
                using (var warm = Fit(ml, options, train, 1, decoderGroups))
                {
                }
                Measure.ResetPeak();
                var watch = Stopwatch.StartNew();
                using var model = Fit(ml, options, train, batches, decoderGroups);
                double step = model.TrainingHistory[0].Elapsed.TotalSeconds / model.TrainingHistory[0].Batches;
                double peak = Measure.PeakMiB();
                float32Step ??= step;
                string ratio = only is null ? F(step / float32Step.Value) + "×" : "";
                Console.WriteLine($"| {Name(loss)}, truncation 300 | {precision} | {F(step)} | {ratio} | {F(peak, "F0")} |");
            }
        }
    }

    private static string Name(AuxiliaryLoss loss) => loss switch
    {
        AuxiliaryLoss.None => "LSTM",
        AuxiliaryLoss.Reconstruct => "r-LSTM",
        _ => "p-LSTM",
    };

    private static AuxLstmClassifierTransformer Fit(MLContext ml, AuxLstmClassifierOptions options, IDataView train, int batches, int? decoderGroups)
    {
        var estimator = ml.Transforms.AuxLstmClassifier(options);
        estimator.MaxBatches = batches;
        estimator.DecoderGroups = decoderGroups;
        return estimator.Fit(train);
    }
}
