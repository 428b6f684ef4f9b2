using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.AuxRnn.Training;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>
/// The ablation behind the defaults: variants of the r-LSTM (and the baselines) trained for the same number of epochs
/// on the same rows, with test accuracy after every epoch. One variant per process call (<c>--ablation DATA --variant
/// NAME</c>), appended as a row to <c>docs/ablation-DATA.md</c>, so long sweeps can be run one variant at a time.
/// </summary>
internal static class Ablation
{
    /// <summary>Each variant: what it changes from the defaults.</summary>
    public static readonly Dictionary<string, Action<AuxLstmClassifierOptions>> Variants = new()
    {
        ["lstm"] = o => o.AuxiliaryLoss = AuxiliaryLoss.None,
        ["r-lstm"] = _ => { },
        ["p-lstm"] = o => o.AuxiliaryLoss = AuxiliaryLoss.Predict,
        ["forward-order"] = o => o.ReverseReconstruction = false,
        ["distant-past-300"] = o => o.DistantPastRange = 300,
        ["spill-100"] = o => o.SpillPastAnchor = 100,
        ["pretrain-1"] = o => o.PretrainEpochs = 1,
        ["sampling-0.5"] = o => o.ScheduledSamplingProbability = 0.5,
        ["decoder-1-layer"] = o => o.DecoderLayers = 1,
        ["segments-4x150"] = o => { o.SegmentsPerSequence = 4; o.SegmentLength = 150; },
        ["forget-bias-default"] = o => o.ForgetGateBias = null,
        ["lstm-forget-bias-default"] = o => { o.AuxiliaryLoss = AuxiliaryLoss.None; o.ForgetGateBias = null; },
        ["adam"] = o => o.Optimizer = AuxOptimizer.Adam,
        ["bfloat16"] = o => o.Precision = ComputePrecision.BFloat16,
        ["bfloat16-decoder"] = o => o.Precision = ComputePrecision.BFloat16, // and the main network kept in float32 (below)
        ["lstm-bfloat16"] = o => { o.AuxiliaryLoss = AuxiliaryLoss.None; o.Precision = ComputePrecision.BFloat16; },
        ["p-lstm-bfloat16"] = o => { o.AuxiliaryLoss = AuxiliaryLoss.Predict; o.Precision = ComputePrecision.BFloat16; },
        // Relative to the data's segment length (600 on MNIST, 100 on DBpedia), so one name means the same change on both.
        ["segments-4"] = o => { o.SegmentsPerSequence = 4; o.SegmentLength /= 4; },
        ["distant-past-half"] = o => o.DistantPastRange = o.SegmentLength / 2,
        ["spill-sixth"] = o => o.SpillPastAnchor = o.SegmentLength / 6,
        ["halving-3"] = o => o.LearningRateHalvingEpochs = 3,
        // Halving every 12 epochs, for a fork of the full-MNIST curves at epoch 12: epochs 1-12 ran at the initial rate
        // as they would have with this option, so a checkpoint of epoch 12 resumes as if the option had been set from
        // the start (the checkpoint's option fingerprint rewritten from "halving 0" to "halving 12").
        ["bfloat16-halving-12"] = o => { o.Precision = ComputePrecision.BFloat16; o.LearningRateHalvingEpochs = 12; },
        ["lstm-bfloat16-halving-12"] = o => { o.AuxiliaryLoss = AuxiliaryLoss.None; o.Precision = ComputePrecision.BFloat16; o.LearningRateHalvingEpochs = 12; },
        // Scheduled sampling on the full-MNIST protocol (bfloat16 like its r-LSTM curve from epoch 7 on): does feeding the
        // decoder its own predictions make the auxiliary loss need the anchor state, as ../shared/docs/method.md warns?
        ["bfloat16-sampling-0.5"] = o => { o.Precision = ComputePrecision.BFloat16; o.ScheduledSamplingProbability = 0.5; },
        ["bfloat16-sampling-1"] = o => { o.Precision = ComputePrecision.BFloat16; o.ScheduledSamplingProbability = 1; },
        // Session 11: what full backpropagation gives on the schedule of session 9's halved curves (what the supervised
        // window alone gives is lstm-bfloat16-halving-12 on data "mnist-tail300").
        ["lstm-full-bptt-bfloat16-halving-12"] = o => { o.AuxiliaryLoss = AuxiliaryLoss.None; o.TruncationLength = null; o.Precision = ComputePrecision.BFloat16; o.LearningRateHalvingEpochs = 12; },
        // Session 12: scheduled sampling carried on the halved schedule, forked from bfloat16-sampling-1's epoch-7
        // checkpoint (epochs 1-7 ran at the initial rate either way; fingerprint rewritten "halving 0" -> "halving 12").
        ["bfloat16-sampling-1-halving-12"] = o => { o.Precision = ComputePrecision.BFloat16; o.ScheduledSamplingProbability = 1; o.LearningRateHalvingEpochs = 12; },
        ["sampling-0.5-exact"] = o => { o.ScheduledSamplingProbability = 0.5; o.ExactScheduledSampling = true; },
    };

    /// <param name="seed">The model's seed (initial weights, batch order, anchors); the rows are the same for every seed.
    /// Another seed than 1 names its row and curve file "VARIANT-seedN".</param>
    /// <param name="checkpoint">
    /// Optional checkpoint folder: a later call with more epochs resumes there, so a long curve can be trained one epoch
    /// per process call and other work can take the machine between epochs. The whole curve so far (one row per
    /// epoch, with its wall time) is written to <c>curve-DATA-VARIANT.csv</c> in <paramref name="output"/> after every call.
    /// </param>
    public static void Run(string data, string variant, int epochs, int trainRows, int testRows, string dataRoot, string output, int threads, string? checkpoint = null, int seed = 1)
    {
        var ml = new MLContext(seed: 1);
        IDataView train, test;
        Action<AuxLstmClassifierOptions> dataOptions;
        switch (data)
        {
            case "mnist":
            case "pmnist":
            case "mnist-tail300":
                int? permutation = data == "pmnist" ? 7 : null;
                train = ml.Data.TakeRows(AuxRnnDatasets.LoadMnist(ml, Path.Combine(dataRoot, "mnist", "train-images-idx3-ubyte.gz"), Path.Combine(dataRoot, "mnist", "train-labels-idx1-ubyte.gz"), permutation), trainRows);
                test = ml.Data.TakeRows(AuxRnnDatasets.LoadMnist(ml, Path.Combine(dataRoot, "mnist", "t10k-images-idx3-ubyte.gz"), Path.Combine(dataRoot, "mnist", "t10k-labels-idx1-ubyte.gz"), permutation), testRows);
                dataOptions = o => o.InputLevels = 256;
                if (data == "mnist-tail300")
                {
                    // Only the last 300 pixels of each image (its bottom 10.7 rows): exactly what the supervised gradient of
                    // a model truncated at 300 steps reaches on the full 784-step rows.
                    var cut = ml.Transforms.CustomMapping<MnistRow, MnistTail>((row, tail) => tail.Tail = row.Features[^MnistTail.Length..], contractName: null)
                        .Append(ml.Transforms.DropColumns("Features")).Fit(train);
                    train = ml.Data.Cache(cut.Transform(train));
                    test = ml.Data.Cache(cut.Transform(test));
                    dataOptions = o => { o.InputLevels = 256; o.SequenceColumnName = "Tail"; };
                }
                break;
            case "dbpedia":
                var trainText = ml.Data.TakeRows(ml.Data.ShuffleRows(AuxRnnDatasets.LoadZhangCsv(ml, Path.Combine(dataRoot, "dbpedia", "train.csv")), seed: 1), trainRows);
                var testText = ml.Data.TakeRows(ml.Data.ShuffleRows(AuxRnnDatasets.LoadZhangCsv(ml, Path.Combine(dataRoot, "dbpedia", "test.csv")), seed: 1), testRows);
                var featurize = AuxRnnDatasets.CharacterFeaturizer(ml, "Tokens").Fit(trainText);
                train = ml.Data.Cache(featurize.Transform(trainText));
                test = ml.Data.Cache(featurize.Transform(testText));
                dataOptions = o => { o.SequenceColumnName = "Tokens"; o.SegmentLength = 100; };
                break;
            default:
                throw new ArgumentException($"unknown data '{data}' (mnist, pmnist, mnist-tail300, dbpedia)");
        }
        if (!Variants.TryGetValue(variant, out var change))
            throw new ArgumentException($"unknown variant '{variant}': {string.Join(", ", Variants.Keys)}");

        Training.MixedPrecision.KeepMainNetworkInFloat32 = variant == "bfloat16-decoder";
        // Float32 unless the variant says otherwise: every ablation row before Auto became the default (session 6) was
        // float32, and a row must not change precision with the machine it runs on.
        var options = new AuxLstmClassifierOptions { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationSet = test, CheckpointFolder = checkpoint, Precision = ComputePrecision.Float32 };
        dataOptions(options);
        change(options);
        string name = seed == 1 ? variant : $"{variant}-seed{seed}";
        Console.WriteLine($"{data} / {name}: {epochs} epochs on {trainRows} rows, tested on {testRows}");
        var watch = Stopwatch.StartNew();
        var model = ml.Transforms.AuxLstmClassifier(options).Fit(train);
        double minutes = watch.Elapsed.TotalMinutes;
        var curve = model.TrainingHistory.Where(e => !e.Pretraining).Select(e => e.ValidationAccuracy ?? double.NaN).ToArray();
        string line = string.Join(" | ", new[]
        {
            name,
            string.Join(" → ", curve.Select(a => (100 * a).ToString("F1", CultureInfo.InvariantCulture))),
            (100 * curve.Max()).ToString("F1", CultureInfo.InvariantCulture),
            minutes.ToString("F1", CultureInfo.InvariantCulture),
            Measure.Commit(),
        });
        Console.WriteLine(line);
        WriteCurve(Path.Combine(output, $"curve-{data}-{name}.csv"), model.TrainingHistory, trainRows, testRows, threads, resumed: checkpoint is not null);
        if (checkpoint is not null)
            return; // a curve in progress: its rows go to the csv, not to the ablation table
        string file = Path.Combine(output, $"ablation-{data}.md");
        if (!File.Exists(file))
        {
            File.WriteAllText(file,
                $"# Ablation on {data}: {epochs} epochs, {trainRows} training rows, {testRows} test rows, seed 1 unless the variant names another, {threads} threads\n\n" +
                "Each row changes one option from the defaults (r-LSTM, truncation 300, one segment of 600 steps per row, reverse order, " +
                "forget-gate bias as TorchSharp initialises it, RMSProp 1e-3, batch 128, float32). Test accuracy % after each joint epoch (pre-training epochs come first and are not counted).\n\n" +
                "| variant | test accuracy % per epoch | best % | wall min | commit |\n|---|---|---|---|---|\n");
        }
        File.AppendAllText(file, "| " + line + " |\n");
    }

    private static void WriteCurve(string path, IReadOnlyList<EpochReport> history, int trainRows, int testRows, int threads, bool resumed)
    {
        var lines = new List<string> { "epoch,pretraining,test_accuracy,train_accuracy,supervised_loss,auxiliary_loss,epoch_seconds,cumulative_minutes,train_rows,test_rows,threads,commit" };
        double total = 0;
        string commit = Measure.Commit();
        // A curve resumed from its checkpoint keeps the commit each earlier epoch was trained at (the csv's last column).
        var earlier = resumed && File.Exists(path) ? File.ReadLines(path).Skip(1).Select(l => l.Split(',')[^1]).ToList() : new List<string>();
        foreach (var (e, i) in history.Select((e, i) => (e, i)))
        {
            string epochCommit = i < earlier.Count ? earlier[i] : commit;
            total += e.Elapsed.TotalMinutes;
            lines.Add(string.Join(",",
                e.Epoch.ToString(CultureInfo.InvariantCulture), e.Pretraining ? "1" : "0",
                (e.ValidationAccuracy ?? double.NaN).ToString("F4", CultureInfo.InvariantCulture),
                e.TrainAccuracy.ToString("F4", CultureInfo.InvariantCulture),
                e.SupervisedLoss.ToString("F4", CultureInfo.InvariantCulture), e.AuxiliaryLoss.ToString("F4", CultureInfo.InvariantCulture),
                e.Elapsed.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture), total.ToString("F1", CultureInfo.InvariantCulture),
                trainRows.ToString(CultureInfo.InvariantCulture), testRows.ToString(CultureInfo.InvariantCulture),
                threads.ToString(CultureInfo.InvariantCulture), epochCommit));
        }
        File.WriteAllLines(path, lines);
    }

    public sealed class MnistRow
    {
        [VectorType(784)]
        public float[] Features { get; set; } = [];
    }

    public sealed class MnistTail
    {
        public const int Length = 300;

        [VectorType(Length)]
        public float[] Tail { get; set; } = [];
    }
}
