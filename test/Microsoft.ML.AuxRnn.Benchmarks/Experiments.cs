using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.AuxRnn.Transforms;
using Microsoft.ML.Data;
using static Microsoft.ML.AuxRnn.Benchmarks.Report;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>One model configuration of the paper's comparisons.</summary>
internal sealed record Config(string Name, AuxiliaryLoss Loss, int? Truncation);

/// <summary>What one budgeted training run gave.</summary>
internal sealed record RunResult(string Name, double TestAccuracy, int Epochs, double SecondsPerStep, double PeakMiB, double TrainSeconds,
    double[] CurveSeconds, double[] CurveAccuracy, string? Failure = null);

internal sealed class Experiments
{
    private static readonly Config[] PaperRows =
    {
        new("LSTM, full BPTT", AuxiliaryLoss.None, null),
        new("LSTM, truncated 300", AuxiliaryLoss.None, 300),
        new("r-LSTM, truncated 300", AuxiliaryLoss.Reconstruct, 300),
        new("p-LSTM, truncated 300", AuxiliaryLoss.Predict, 300),
        new("r-LSTM, full BPTT", AuxiliaryLoss.Reconstruct, null),
    };

    private readonly BenchSettings _settings;
    private readonly Report _report;
    // Device = Auto follows the context, as ML.NET's trainers: the first GPU when there is one, else the CPU.
    private readonly MLContext _ml = new(seed: 1) { GpuDeviceId = TorchSharp.torch.cuda.is_available() ? 0 : null, FallbackToCpu = true };

    public Experiments(BenchSettings settings, Report report)
    {
        _settings = settings;
        _report = report;
    }

    private string DataPath(params string[] parts) => Path.Combine(new[] { _settings.Data }.Concat(parts).ToArray());

    // ---------------------------------------------------------------- experiment 1 and 2

    public void PixelMnist()
    {
        var paper = new Dictionary<string, (double Mnist, double PMnist)>
        {
            ["LSTM, full BPTT"] = (98.3, 89.4), ["LSTM, truncated 300"] = (11.3, 88.8), ["r-LSTM, truncated 300"] = (96.4, 92.8),
            ["p-LSTM, truncated 300"] = (95.4, 92.5), ["r-LSTM, full BPTT"] = (98.4, 95.2), ["Transformer"] = (98.9, 97.9),
        };
        foreach (bool permuted in new[] { false, true })
        {
            string name = permuted ? "Permuted MNIST" : "Pixel MNIST";
            IDataView train = Take(AuxRnnDatasets.LoadMnist(_ml, DataPath("mnist", "train-images-idx3-ubyte.gz"), DataPath("mnist", "train-labels-idx1-ubyte.gz"), permuted ? 7 : null), _settings.TrainRows);
            IDataView test = Take(AuxRnnDatasets.LoadMnist(_ml, DataPath("mnist", "t10k-images-idx3-ubyte.gz"), DataPath("mnist", "t10k-labels-idx1-ubyte.gz"), permuted ? 7 : null), _settings.TestRows);
            var results = PaperRows.Select(c => Run(c, train, test, o => o.InputLevels = 256)).ToList();
            results.Add(RunTransformer(train, test, 784, 256));
            _report.Section($"{name} (784 steps, experiment {(permuted ? "1b" : "1a")})",
                "Same budget for each row; test accuracy on the first test rows. Pixels are 256 tokens, as in the paper.");
            _report.Table(new[] { "model", "test accuracy % (here)", "paper %", "epochs in budget", "s / step (batch 128)", "peak MiB" },
                results.Select(r => (IReadOnlyList<string>)new[]
                {
                    r.Name, r.Failure ?? F(100 * r.TestAccuracy), F(Paper(paper, r.Name, permuted)),
                    r.Epochs.ToString(), F(r.SecondsPerStep, "F3"), F(r.PeakMiB, "F0"),
                }));
            _report.Plot($"{(permuted ? "pmnist" : "mnist")}-accuracy-vs-time.png", $"{name}: validation accuracy vs training time", "seconds", "accuracy",
                results.Select(r => (r.Name, r.CurveSeconds, r.CurveAccuracy)));
            Ratio(results, name);
        }
    }

    public void Cifar10()
    {
        var paper = new Dictionary<string, double>
        {
            ["LSTM, full BPTT"] = 58.8, ["LSTM, truncated 300"] = 49.0, ["r-LSTM, truncated 300"] = 65.9,
            ["p-LSTM, truncated 300"] = 64.7, ["r-LSTM, full BPTT"] = 72.2,
        };
        IDataView train = Take(AuxRnnDatasets.LoadCifar10(_ml, DataPath("cifar10", "data_batch_1.bin")), _settings.TrainRows);
        IDataView test = Take(AuxRnnDatasets.LoadCifar10(_ml, DataPath("cifar10", "test_batch.bin")), _settings.TestRows);
        // Continuous RGB values are projected linearly: scale them to [0, 1] first, as a user would.
        var scale = _ml.Transforms.NormalizeMinMax("Features").Fit(train);
        train = scale.Transform(train);
        test = scale.Transform(test);
        var results = PaperRows.Select(c => Run(c, train, test, o => o.StepSize = 3)).ToList();
        _report.Section("CIFAR-10 pixels (1,024 steps × 3 values, experiment 2)",
            "The subset in ../shared/data has 4,000 training images (the paper: 50,000), so accuracies are lower.");
        _report.Table(new[] { "model", "test accuracy % (here)", "paper %", "epochs in budget", "s / step", "peak MiB" },
            results.Select(r => (IReadOnlyList<string>)new[]
            {
                r.Name, r.Failure ?? F(100 * r.TestAccuracy), F(paper[r.Name]), r.Epochs.ToString(), F(r.SecondsPerStep, "F3"), F(r.PeakMiB, "F0"),
            }));
    }

    // ---------------------------------------------------------------- experiment 3

    public void DbPedia()
    {
        IDataView train = Take(AuxRnnDatasets.LoadZhangCsv(_ml, DataPath("dbpedia", "train.csv")), _settings.TrainRows);
        IDataView test = Take(AuxRnnDatasets.LoadZhangCsv(_ml, DataPath("dbpedia", "test.csv")), _settings.TestRows);
        // Zhang et al.'s 70-character alphabet (lower-cased), as in the character-level papers.
        var featurize = AuxRnnDatasets.CharacterFeaturizer(_ml, "Tokens");
        var fitted = featurize.Fit(train);
        IDataView trainTokens = fitted.Transform(train), testTokens = fitted.Transform(test);
        var rows = new[]
        {
            new Config("LSTM, truncated 300", AuxiliaryLoss.None, 300),
            new Config("r-LSTM, truncated 300", AuxiliaryLoss.Reconstruct, 300),
            new Config("p-LSTM, truncated 300", AuxiliaryLoss.Predict, 300),
        };
        var results = rows.Select(c => Run(c, trainTokens, testTokens, o => { o.SequenceColumnName = "Tokens"; o.SegmentLength = 100; })).ToList();

        var watch = Stopwatch.StartNew();
        var sdca = _ml.Transforms.Text.FeaturizeText("Features", "Text")
            .Append(_ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Features"));
        var sdcaModel = sdca.Fit(train);
        double sdcaSeconds = watch.Elapsed.TotalSeconds;
        double sdcaAccuracy = _ml.MulticlassClassification.Evaluate(sdcaModel.Transform(test)).MicroAccuracy;
        results.Add(new RunResult("FeaturizeText + SdcaMaximumEntropy", sdcaAccuracy, 0, double.NaN, double.NaN, sdcaSeconds, Array.Empty<double>(), Array.Empty<double>()));

        _report.Section("DBpedia, character level (experiment 3)",
            "14 classes. The LSTM rows get the same time budget; the ML.NET baseline trains to convergence. Character-level state of the art ≈ 98.5–98.7 %.");
        _report.Table(new[] { "model", "test accuracy %", "training s", "epochs" },
            results.Select(r => (IReadOnlyList<string>)new[] { r.Name, r.Failure ?? F(100 * r.TestAccuracy), F(r.TrainSeconds, "F0"), r.Epochs.ToString() }));
    }

    // ---------------------------------------------------------------- experiment 4

    public void LongSequences()
    {
        const int batch = 16;
        var rows = new List<IReadOnlyList<string>>();
        var lstmStep = new Dictionary<int, double>();
        var auxStep = new Dictionary<int, double>();
        var auxPeak = new Dictionary<int, double>();
        foreach (int size in new[] { 32, 64, 128 })
        {
            int steps = size * size;
            IDataView train = Take(AuxRnnDatasets.LoadImageFolder(_ml, DataPath("clothing128", "train"), size, size, PixelChannels.Grey, maxImagesPerClass: batch), batch * 4);
            foreach (var config in new[] { new Config("LSTM, full BPTT", AuxiliaryLoss.None, null), new Config("r-LSTM, truncated 300", AuxiliaryLoss.Reconstruct, 300) })
            {
                var r = StepOnly(config, train, batch, o => o.InputLevels = 256);
                rows.Add(new[] { config.Name, steps.ToString("N0"), F(r.SecondsPerStep, "F2"), F(r.PeakMiB, "F0"), r.Failure ?? "" });
                (config.Loss == AuxiliaryLoss.None ? lstmStep : auxStep)[steps] = r.SecondsPerStep;
                if (config.Loss != AuxiliaryLoss.None)
                    auxPeak[steps] = r.PeakMiB;
            }

            var t = TransformerStep(train, batch, steps);
            rows.Add(new[] { "Transformer", steps.ToString("N0"), F(t.SecondsPerStep, "F2"), F(t.PeakMiB, "F0"), t.Failure ?? "" });
        }

        _report.Section("Long sequences from photos (clothing128, grey; experiment 4)",
            $"Time per training step (batch {batch}, HiddenSize 128, segment 600) and peak resident memory of the process during that setting.");
        _report.Table(new[] { "model", "steps", "s / step", "peak MiB", "note" }, rows);
        if (auxPeak.TryGetValue(1024, out double p1) && auxPeak.TryGetValue(16384, out double p16))
            _report.Text($"r-LSTM truncated peak memory 16,384 / 1,024 steps: **{p16 / p1:F2}×** (target ≤ 1.5×). " +
                         string.Join("; ", auxStep.Keys.Where(k => k >= 4096 && lstmStep.ContainsKey(k)).Select(k =>
                             $"at {k:N0} steps r-LSTM step {auxStep[k]:F2} s vs full-BPTT LSTM {lstmStep[k]:F2} s ({(auxStep[k] < lstmStep[k] ? "below" : "NOT below")})")) + ".");
    }

    // ---------------------------------------------------------------- experiment 5

    public void Overheads()
    {
        const int rows = 1280, batch = 128;
        IDataView train = Take(AuxRnnDatasets.LoadMnist(_ml, DataPath("mnist", "train-images-idx3-ubyte.gz"), DataPath("mnist", "train-labels-idx1-ubyte.gz"), null), rows);
        var (tokens, labels) = ReadTokens(train);

        // Warm-up (JIT, libtorch's first allocations) before anything is timed.
        HandWrittenLoop.SequencesPerSecond(tokens.Take(batch).ToArray(), labels, 256, 10, batch, 1);
        double hand = HandWrittenLoop.SequencesPerSecond(tokens, labels, 256, 10, batch, 1);

        var options = Options(new Config("LSTM, full BPTT", AuxiliaryLoss.None, null), o => { o.InputLevels = 256; o.Epochs = 1; o.DropConnect = 0.5; });
        var watch = Stopwatch.StartNew();
        var model = _ml.Transforms.AuxLstmClassifier(options).Fit(train);
        double fit = rows / watch.Elapsed.TotalSeconds;

        watch.Restart();
        var cached = ReadTokens(train);
        double readSeconds = watch.Elapsed.TotalSeconds;
        double fitSeconds = rows / fit;

        IDataView scoring = Take(AuxRnnDatasets.LoadMnist(_ml, DataPath("mnist", "t10k-images-idx3-ubyte.gz"), DataPath("mnist", "t10k-labels-idx1-ubyte.gz"), null), 1024);
        watch.Restart();
        var scores = model.Transform(scoring).GetColumn<float[]>("Score").ToList();
        double batched = scores.Count / watch.Elapsed.TotalSeconds;
        var engine = _ml.Model.CreatePredictionEngine<MnistRow, ScoreRow>(model);
        var inputs = _ml.Data.CreateEnumerable<MnistRow>(scoring, reuseRowObject: false).Take(256).ToList();
        watch.Restart();
        foreach (var input in inputs)
            engine.Predict(input);
        double rowByRow = inputs.Count / watch.Elapsed.TotalSeconds;

        _report.Section("Overheads (experiment 5)", "Pixel MNIST, 784 steps, batch 128, LSTM full BPTT (AuxiliaryLoss None) for the training comparison.");
        _report.Table(new[] { "measure", "value", "target" }, new IReadOnlyList<string>[]
        {
            new[] { "Fit, sequences/s", F(fit), "" },
            new[] { "hand-written TorchSharp loop, sequences/s", F(hand), "" },
            new[] { "Fit / hand-written", F(fit / hand, "F2") + "×", "≥ 0.9×" },
            new[] { "Transform over IDataView, rows/s", F(batched), "" },
            new[] { "PredictionEngine row by row, rows/s", F(rowByRow), "" },
            new[] { "Transform / PredictionEngine", F(batched / rowByRow, "F1") + "×", "≥ 5×" },
            new[] { "share of Fit spent reading the IDataView into memory", F(100 * readSeconds / fitSeconds) + " %", "" },
        });
        GC.KeepAlive(cached);
    }

    // ---------------------------------------------------------------- helpers

    private static double Paper(Dictionary<string, (double Mnist, double PMnist)> paper, string name, bool permuted)
    {
        var row = paper.FirstOrDefault(p => name.StartsWith(p.Key, StringComparison.Ordinal));
        return row.Key is null ? double.NaN : permuted ? row.Value.PMnist : row.Value.Mnist;
    }

    private AuxLstmClassifierOptions Options(Config config, Action<AuxLstmClassifierOptions>? configure)
    {
        var options = new AuxLstmClassifierOptions
        {
            AuxiliaryLoss = config.Loss,
            TruncationLength = config.Truncation,
            AuxiliaryTruncationLength = config.Truncation,
            Epochs = 1000,
            BatchSize = 128,
            Seed = 1,
            Device = ComputeDevice.Auto,
            MaxTrainingTime = TimeSpan.FromMinutes(_settings.Minutes),
        };
        configure?.Invoke(options);
        return options;
    }

    private RunResult Run(Config config, IDataView train, IDataView test, Action<AuxLstmClassifierOptions> configure)
    {
        Console.WriteLine($"  {config.Name}");
        var split = _ml.Data.TrainTestSplit(train, testFraction: 0.1, seed: 1);
        var options = Options(config, configure);
        options.ValidationSet = split.TestSet;
        try
        {
            Measure.ResetPeak();
            var watch = Stopwatch.StartNew();
            var model = _ml.Transforms.AuxLstmClassifier(options).Fit(split.TrainSet);
            double seconds = watch.Elapsed.TotalSeconds;
            double peak = Measure.PeakMiB();
            double accuracy = _ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            var history = model.TrainingHistory;
            int steps = history.Sum(e => e.Batches);
            double trainTime = history.Sum(e => e.Elapsed.TotalSeconds);
            var curve = history.Where(e => e.ValidationAccuracy.HasValue).ToList();
            double cumulative = 0;
            var xs = new List<double>();
            foreach (var e in history)
            {
                cumulative += e.Elapsed.TotalSeconds;
                if (e.ValidationAccuracy.HasValue)
                    xs.Add(cumulative);
            }
            Console.WriteLine($"    accuracy {accuracy:P1}, {history.Count} epochs, {trainTime / Math.Max(1, steps):F3} s/step");
            return new RunResult(config.Name, accuracy, history.Count(e => !e.Pretraining), trainTime / Math.Max(1, steps), peak, seconds,
                xs.ToArray(), curve.Select(e => e.ValidationAccuracy!.Value).ToArray());
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Console.WriteLine($"    failed: {e.Message}");
            return new RunResult(config.Name, double.NaN, 0, double.NaN, double.NaN, double.NaN, Array.Empty<double>(), Array.Empty<double>(), "failed: " + e.GetType().Name);
        }
    }

    /// <summary>Time per step and peak memory of a few training steps (one epoch over a few batches).</summary>
    private RunResult StepOnly(Config config, IDataView train, int batch, Action<AuxLstmClassifierOptions> configure)
    {
        Console.WriteLine($"  {config.Name}");
        var options = Options(config, configure);
        options.BatchSize = batch;
        options.Epochs = 1;
        options.MaxTrainingTime = null;
        try
        {
            Measure.ResetPeak();
            var model = _ml.Transforms.AuxLstmClassifier(options).Fit(train);
            double peak = Measure.PeakMiB();
            var epoch = model.TrainingHistory.Single();
            Console.WriteLine($"    {epoch.Elapsed.TotalSeconds / epoch.Batches:F2} s/step, peak {peak:F0} MiB");
            return new RunResult(config.Name, double.NaN, 1, epoch.Elapsed.TotalSeconds / epoch.Batches, peak, epoch.Elapsed.TotalSeconds, Array.Empty<double>(), Array.Empty<double>());
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Console.WriteLine($"    failed: {e.Message}");
            return new RunResult(config.Name, double.NaN, 0, double.NaN, double.NaN, double.NaN, Array.Empty<double>(), Array.Empty<double>(), "out of memory / failed: " + e.GetType().Name);
        }
    }

    private RunResult RunTransformer(IDataView train, IDataView test, int steps, int vocab)
    {
        Console.WriteLine("  Transformer");
        var (trainTokens, trainLabels) = ReadTokens(train);
        var (testTokens, testLabels) = ReadTokens(test);
        var result = TransformerTraining.Train(trainTokens, trainLabels, testTokens, testLabels, vocab, steps, 10, TimeSpan.FromMinutes(_settings.Minutes));
        Console.WriteLine($"    accuracy {result.TestAccuracy:P1}");
        return result;
    }

    private RunResult TransformerStep(IDataView train, int batch, int steps)
    {
        Console.WriteLine("  Transformer");
        double estimate = TransformerBaseline.EstimateStepGiB(batch, steps, TransformerTraining.Model, TransformerTraining.Heads, TransformerTraining.Layers, TransformerTraining.FeedForward);
        if (estimate > 16)
            return new RunResult("Transformer", double.NaN, 0, double.NaN, double.NaN, double.NaN, Array.Empty<double>(), Array.Empty<double>(),
                $"out of memory: needs ≈ {estimate:F0} GiB for attention (machine: 24 GiB)");
        var (tokens, labels) = ReadTokens(train);
        Measure.ResetPeak();
        double perStep = TransformerTraining.SecondsPerStep(tokens, labels, 256, steps, 10, batch);
        return new RunResult("Transformer", double.NaN, 1, perStep, Measure.PeakMiB(), double.NaN, Array.Empty<double>(), Array.Empty<double>());
    }

    private static void Ratio(List<RunResult> results, string name)
    {
        var lstm = results.FirstOrDefault(r => r.Name == "LSTM, truncated 300");
        var aux = results.FirstOrDefault(r => r.Name == "r-LSTM, truncated 300");
        if (lstm != null && aux != null)
            Console.WriteLine($"  {name}: r-LSTM / LSTM step time {aux.SecondsPerStep / lstm.SecondsPerStep:F2}×");
    }

    private IDataView Take(IDataView data, int rows) => _ml.Data.TakeRows(data, rows);

    /// <summary>Reads float pixel rows as integer tokens, and key labels as 0-based ints.</summary>
    private (int[][] Tokens, int[] Labels) ReadTokens(IDataView data)
    {
        var features = data.GetColumn<float[]>("Features").Select(v => v.Select(x => (int)x).ToArray()).ToArray();
        var labels = data.GetColumn<uint>("Label").Select(l => (int)l - 1).ToArray();
        return (features, labels);
    }

    private sealed class MnistRow
    {
        public uint Label { get; set; }

        [VectorType(784)]
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
