using System.Diagnostics;
using Microsoft.ML.AuxRnn.Cli.Demo;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

/// <summary>
/// The built-in demonstration (<c>auxrnn</c> with no arguments): the same LSTM trained twice on
/// <see cref="StrokeDigits"/> — once with backpropagation truncated to the last steps and no auxiliary loss, once as
/// r-LSTM with the same truncation — then both scored on held-out images. The digit sits in the first rows; the
/// truncation window sees only blank rows, so only the auxiliary loss can teach the LSTM to remember what it read.
/// </summary>
internal static class DemoCommand
{
    /// <summary>Sizes of a run; <see cref="Default"/> finishes in a few minutes on 2 CPU cores, <see cref="Tiny"/> in seconds (CI).</summary>
    internal sealed record Settings(int Size, int GlyphRows, int TrainRows, int TestRows, int Epochs, int Hidden, int BatchSize,
        int? Truncation, int? AuxiliaryTruncation, int SegmentLength, double LearningRate, int Seed, int MaxSecondsPerModel = 0)
    {
        public static Settings Default { get; } = new(Size: 12, GlyphRows: 10, TrainRows: 2000, TestRows: 500, Epochs: 40, Hidden: 64,
            BatchSize: 32, Truncation: 8, AuxiliaryTruncation: 64, SegmentLength: 64, LearningRate: 3e-3, Seed: 1,
            MaxSecondsPerModel: 140); // the whole demonstration stays under 5 minutes on a slow machine

        public static Settings Tiny { get; } = new(Size: 12, GlyphRows: 10, TrainRows: 60, TestRows: 30, Epochs: 1, Hidden: 8,
            BatchSize: 30, Truncation: 8, AuxiliaryTruncation: 64, SegmentLength: 64, LearningRate: 3e-3, Seed: 1);

        public int Steps => Size * Size;

        public int BlankSteps => (Size - GlyphRows) * Size;
    }

    /// <summary>Sizes of the default task, <see cref="RecallSequences"/>.</summary>
    internal sealed record RecallSettings(int Length, int Quiet, int TrainRows, int TestRows, int Epochs, int Hidden, int BatchSize,
        int Truncation, int SegmentLength, int Segments, double LearningRate, int Seed, int MaxSecondsPerModel = 0)
    {
        public static RecallSettings Default { get; } = new(Length: RecallLength, Quiet: 2 * RecallTruncation, TrainRows: 2000, TestRows: 500,
            Epochs: 12, Hidden: 32, BatchSize: 32, Truncation: RecallTruncation, SegmentLength: 30, Segments: 4, LearningRate: 3e-3, Seed: 1,
            MaxSecondsPerModel: 120);

        public static RecallSettings Tiny { get; } = new(Length: 40, Quiet: 16, TrainRows: 60, TestRows: 30, Epochs: 1, Hidden: 8,
            BatchSize: 30, Truncation: 8, SegmentLength: 10, Segments: 2, LearningRate: 3e-3, Seed: 1);
    }

    private const int RecallLength = 100;
    private const int RecallTruncation = 10;

    public static object Run(CommandLine line, IAnsiConsole console)
    {
        AuxRnnCli.EnsureTorch();
        if (!string.Equals(line.String("task") ?? "recall", "digits", StringComparison.OrdinalIgnoreCase))
            return RunRecall(line, console);
        var s = line.Flag("tiny") ? Settings.Tiny : Settings.Default;
        s = s with
        {
            TrainRows = line.Int("rows", 20) ?? s.TrainRows,
            TestRows = line.Int("test-rows", 10) ?? s.TestRows,
            Epochs = line.Int("epochs", 1) ?? s.Epochs,
            Seed = line.Int("seed") ?? s.Seed,
            MaxSecondsPerModel = line.Int("max-seconds", 0) ?? s.MaxSecondsPerModel,
            Size = line.Int("size", 8) ?? s.Size,
            Hidden = line.Int("hidden-size", 1) ?? s.Hidden,
            BatchSize = line.Int("batch-size", 1) ?? s.BatchSize,
            SegmentLength = line.Int("segment-length", 2) ?? s.SegmentLength,
            LearningRate = line.String("learning-rate") is string lr ? (double)OptionsBinder.Convert(lr, typeof(double), "learning-rate")! : s.LearningRate,
        };
        int? truncation = line.String("truncation-length") is string t ? (int?)OptionsBinder.Convert(t, typeof(int?), "truncation-length") : s.Truncation;
        int? auxiliaryTruncation = line.String("auxiliary-truncation-length") is string a ? (int?)OptionsBinder.Convert(a, typeof(int?), "auxiliary-truncation-length") : s.AuxiliaryTruncation;
        s = s with
        {
            GlyphRows = line.Int("glyph-rows", 5) ?? Math.Min(s.GlyphRows, s.Size),
            Truncation = truncation,
            AuxiliaryTruncation = auxiliaryTruncation,
        };
        string? only = line.String("only"); // "lstm" or "r-lstm": train one of the two
        line.Flag("json");
        line.ThrowOnUnused();

        console.Write(new Rule("[bold]auxrnn demonstration: why the auxiliary loss matters[/]").LeftJustified());
        string window = s.Truncation is int last ? $"the last [bold]{last}[/] steps only — all of them blank" : "all steps (full backpropagation through time)";
        console.MarkupLine($"Each image is a digit drawn with random strokes in the top {s.GlyphRows} rows of a {s.Size}×{s.Size} picture; " +
                           $"the other {s.Size - s.GlyphRows} rows are blank. Read one pixel at a time, it is a sequence of {s.Steps:N0} steps " +
                           $"whose last {s.BlankSteps:N0} are blank.");
        console.MarkupLine($"Both LSTMs backpropagate the label's gradient through {window}, so the label alone never tells them " +
                           "what to remember about the digit. r-LSTM also learns to reconstruct, from its memory at random anchors, the " +
                           $"{s.SegmentLength} steps it read before each one (gradient through {s.AuxiliaryTruncation?.ToString() ?? "all"} steps): " +
                           "that teaches it to keep what it read.");
        console.WriteLine();

        var watch = Stopwatch.StartNew();
        var ml = new MLContext(s.Seed);
        var trainRows = StrokeDigits.Generate(s.TrainRows, s.Size, s.GlyphRows, s.Seed);
        var testRows = StrokeDigits.Generate(s.TestRows, s.Size, s.GlyphRows, s.Seed + 1000);
        ShowExample(console, trainRows[0], s.Size);
        var train = StrokeDigits.ToDataView(ml, trainRows, s.Size);
        var test = StrokeDigits.ToDataView(ml, testRows, s.Size);

        string bptt = s.Truncation is int k ? $"truncated {k}" : "full BPTT";
        return Compare(console, ml, train, test, only, s.Epochs, s, s.Truncation, watch,
            new[] { ($"LSTM, {bptt}", AuxiliaryLoss.None), ($"r-LSTM, {bptt}", AuxiliaryLoss.Reconstruct) },
            loss => new AuxLstmClassifierOptions
            {
                AuxiliaryLoss = loss,
                HiddenSize = s.Hidden,
                EmbeddingSize = s.Hidden,
                ClassifierHiddenSize = 2 * s.Hidden,
                TruncationLength = s.Truncation,
                AuxiliaryTruncationLength = s.AuxiliaryTruncation,
                SegmentLength = s.SegmentLength,
                Epochs = s.Epochs,
                BatchSize = s.BatchSize,
                LearningRate = s.LearningRate,
                InputLevels = 256, // pixel intensities as tokens, as in the paper
                Optimizer = AuxOptimizer.Adam,
                Seed = s.Seed,
                Device = ComputeDevice.Cpu,
                MaxTrainingTime = s.MaxSecondsPerModel > 0 ? TimeSpan.FromSeconds(s.MaxSecondsPerModel) : null,
            },
            $"Held-out accuracy on {s.TestRows:N0} images ({s.Steps:N0} steps each; chance 10 %)",
            $"the digit across {s.BlankSteps:N0} blank steps", "");
    }

    /// <summary>
    /// The default demonstration: an LSTM must tell which of four letters was written at the start of a
    /// <see cref="RecallSequences"/> row, once with its label's gradient truncated to the last steps (which never hold
    /// the letter) and once as an r-LSTM with the same truncation.
    /// </summary>
    private static object RunRecall(CommandLine line, IAnsiConsole console)
    {
        var s = line.Flag("tiny") ? RecallSettings.Tiny : RecallSettings.Default;
        s = s with
        {
            TrainRows = line.Int("rows", 20) ?? s.TrainRows,
            TestRows = line.Int("test-rows", 10) ?? s.TestRows,
            Epochs = line.Int("epochs", 1) ?? s.Epochs,
            Seed = line.Int("seed") ?? s.Seed,
            MaxSecondsPerModel = line.Int("max-seconds", 0) ?? s.MaxSecondsPerModel,
            Hidden = line.Int("hidden-size", 1) ?? s.Hidden,
            BatchSize = line.Int("batch-size", 1) ?? s.BatchSize,
            SegmentLength = line.Int("segment-length", 2) ?? s.SegmentLength,
            Truncation = line.Int("truncation-length", 0) ?? s.Truncation,
        };
        s = s with
        {
            Length = line.Int("length", s.Quiet + 8) ?? s.Length,
        };
        string? only = line.String("only");
        line.Flag("json");
        line.ThrowOnUnused();

        console.Write(new Rule("[bold]auxrnn demonstration: why the auxiliary loss matters[/]").LeftJustified());
        console.MarkupLine($"Each sequence has [bold]{s.Length:N0}[/] steps. Step 2 holds one of the letters {string.Join(", ", RecallSequences.Classes)} — " +
                           "the class to predict — and the letter is echoed once after a cue (!) somewhere in the first part; " +
                           $"the last {s.Quiet} steps are always background.");
        console.MarkupLine($"Both LSTMs backpropagate the label's gradient through the last [bold]{s.Truncation}[/] steps only, so the label " +
                           "alone never tells them to remember the letter. r-LSTM also learns to reconstruct, from its memory at " +
                           $"{s.Segments} random anchors per sequence, up to {s.SegmentLength} steps it read before each: that teaches it to keep what it read.");
        console.WriteLine();

        var watch = Stopwatch.StartNew();
        var ml = new MLContext(s.Seed);
        var trainRows = RecallSequences.Generate(s.TrainRows, s.Length, s.Quiet, s.Seed);
        var testRows = RecallSequences.Generate(s.TestRows, s.Length, s.Quiet, s.Seed + 1000);
        console.Write(new Panel(new Text(RecallSequences.Render(trainRows[0].Features, 50))) { Header = new PanelHeader($"a sequence of class {trainRows[0].Label}") });
        var train = RecallSequences.ToDataView(ml, trainRows, s.Length);
        var test = RecallSequences.ToDataView(ml, testRows, s.Length);

        return Compare(console, ml, train, test, only, s.Epochs, s, s.Truncation, watch,
            new[] { ($"LSTM, truncated {s.Truncation}", AuxiliaryLoss.None), ($"r-LSTM, truncated {s.Truncation}", AuxiliaryLoss.Reconstruct) },
            loss => new AuxLstmClassifierOptions
            {
                AuxiliaryLoss = loss,
                InputLevels = RecallSequences.Levels,
                HiddenSize = s.Hidden,
                EmbeddingSize = Math.Max(4, s.Hidden / 2),
                ClassifierHiddenSize = s.Hidden,
                TruncationLength = s.Truncation,
                AuxiliaryTruncationLength = null,
                SegmentLength = s.SegmentLength,
                SegmentsPerSequence = s.Segments,
                ReverseReconstruction = false,
                ForgetGateBias = 1,
                Epochs = s.Epochs,
                BatchSize = s.BatchSize,
                LearningRate = s.LearningRate,
                Seed = s.Seed,
                Device = ComputeDevice.Cpu,
                MaxTrainingTime = s.MaxSecondsPerModel > 0 ? TimeSpan.FromSeconds(s.MaxSecondsPerModel) : null,
            },
            $"Held-out accuracy on {s.TestRows:N0} sequences ({s.Length:N0} steps each; chance 25 %)",
            $"the letter across {s.Length - 2:N0} steps", " The image version: auxrnn demo --task digits.");
    }

    /// <summary>
    /// Trains each model in turn with a progress display, scores it on the held-out rows, prints the comparison table
    /// and a verdict, and returns the --json document.
    /// </summary>
    private static object Compare(IAnsiConsole console, MLContext ml, IDataView train, IDataView test, string? only, int epochCount,
        object settings, int? truncation, Stopwatch watch, (string Name, AuxiliaryLoss Loss)[] models,
        Func<AuxiliaryLoss, AuxLstmClassifierOptions> optionsFor, string title, string carried, string hint)
    {
        var results = new List<(string Name, AuxiliaryLoss Loss, EvaluationResult Test, double Seconds, List<EpochLine> Epochs)>();
        foreach (var (name, loss) in models.Where(m => only == null || m.Name.StartsWith(only, StringComparison.OrdinalIgnoreCase)))
        {
            var options = optionsFor(loss);
            var epochs = new List<EpochLine>();
            var clock = Stopwatch.StartNew();
            var model = ProgressDisplay.Run(console, ml, name, epochCount, () => ml.Transforms.AuxLstmClassifier(options).Fit(train), epochs);
            double seconds = clock.Elapsed.TotalSeconds;
            results.Add((name, loss, EvaluationResult.Compute(ml, model, test), seconds, epochs));
            model.Dispose();
        }

        var table = new Table().Border(TableBorder.Rounded).Title(title);
        table.AddColumn("model").AddColumn(new TableColumn("test accuracy").RightAligned()).AddColumn(new TableColumn("final training loss").RightAligned())
            .AddColumn(new TableColumn("epochs").RightAligned()).AddColumn(new TableColumn("training time").RightAligned());
        foreach (var r in results)
        {
            string loss = r.Epochs.LastOrDefault()?.Loss is double l ? l.ToString("F3") : "–";
            table.AddRow(r.Name, $"[bold]{r.Test.Accuracy:P1}[/]", loss, r.Epochs.Count.ToString(), $"{r.Seconds:N0} s");
        }
        console.Write(table);

        double gap = results.Count == 2 ? results[1].Test.Accuracy - results[0].Test.Accuracy : 0;
        string verdict = gap > 0.1
            ? $"r-LSTM is {gap * 100:F0} points ahead: the auxiliary loss let it carry {carried} that the truncated gradient never crossed."
            : gap > 0
                ? $"r-LSTM is {gap * 100:F1} points ahead; with more epochs (--epochs) the gap usually widens."
                : "On this run the auxiliary loss did not help; try more epochs (--epochs) or rows (--rows).";
        console.MarkupLine(Markup.Escape(verdict));
        console.MarkupLine($"[grey]Done in {watch.Elapsed.TotalSeconds:N0} s.{hint} Real data: auxrnn train --data PATH (see auxrnn help).[/]");

        return new
        {
            command = "demo",
            settings,
            seconds = watch.Elapsed.TotalSeconds,
            models = results.Select(r => new
            {
                name = r.Name,
                auxiliaryLoss = r.Loss.ToString(),
                truncation,
                testAccuracy = r.Test.Accuracy,
                trainingSeconds = r.Seconds,
                epochs = r.Epochs.Select(e => new { epoch = e.Epoch, loss = e.Loss, accuracy = e.Accuracy, seconds = e.Seconds }),
            }),
        };
    }

    private static void ShowExample(IAnsiConsole console, StrokeDigits.Row row, int size)
    {
        var lines = StrokeDigits.Render(row.Features, size).ToArray();
        var panel = new Panel(new Text(string.Join("\n", lines))) { Header = new PanelHeader($"a {row.Label}") };
        console.Write(panel);
    }
}
