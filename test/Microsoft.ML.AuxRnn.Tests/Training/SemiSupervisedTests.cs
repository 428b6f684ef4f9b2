using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.AuxRnn.Tests.Learning;
using Microsoft.ML.AuxRnn.Training;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>
/// Semi-supervised training: rows whose label is missing (key 0) train the auxiliary loss, in pre-training and in joint
/// training, and are left out of the supervised loss; Fit logs how many rows of each kind it used.
/// </summary>
public class SemiSupervisedTests
{
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public SemiSupervisedTests(Xunit.Abstractions.ITestOutputHelper output) => _output = output;

    public sealed class TokenRow
    {
        public string Label { get; set; } = "";

        [KeyType(10)]
        public uint[] Tokens { get; set; } = Array.Empty<uint>();
    }

    /// <summary>The class is the first token (1 or 2); the other steps are noise tokens 3..10.</summary>
    private static List<TokenRow> FirstTokenRows(int rows, int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows).Select(i =>
        {
            var tokens = new uint[length];
            tokens[0] = (uint)(1 + i % 2);
            for (int t = 1; t < length; t++)
                tokens[t] = (uint)rng.Next(3, 11);
            return new TokenRow { Label = i % 2 == 0 ? "a" : "b", Tokens = tokens };
        }).ToList();
    }

    private static AuxLstmClassifierOptions Options(AuxiliaryLoss loss = AuxiliaryLoss.Reconstruct) => new()
    {
        SequenceColumnName = "Tokens",
        HiddenSize = 32,
        EmbeddingSize = 16,
        ClassifierHiddenSize = 32,
        DropConnect = 0,
        AuxiliaryLoss = loss,
        TruncationLength = 4,
        SegmentLength = 8,
        BatchSize = 16,
        PretrainEpochs = 1,
        Epochs = 1,
        Seed = 3,
        Device = ComputeDevice.Cpu,
    };

    /// <summary>Fits on <paramref name="rows"/> (label "" = missing) with keys fitted on "a" and "b"; returns the model and the log.</summary>
    private static (TransformerChain<AuxLstmClassifierTransformer> Model, List<string> Log) Fit(IEnumerable<TokenRow> rows, AuxLstmClassifierOptions options)
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => log.Add(e.Message);
        // The key mapping is fitted on the class names alone, so that a row whose label is "" gets the missing key 0.
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(new[] { new { Label = "a" }, new { Label = "b" } }));
        var model = keys.Append(ml.Transforms.AuxLstmClassifier(options).Fit(keys.Transform(ml.Data.LoadFromEnumerable(rows))));
        return (model, log);
    }

    private static List<TokenRow> Unlabeled(IEnumerable<TokenRow> rows) => rows.Select(r => new TokenRow { Label = "", Tokens = r.Tokens }).ToList();

    [Fact]
    public void FitUsesUnlabeledRowsForTheAuxiliaryLossAndLogsTheCounts()
    {
        var all = FirstTokenRows(96, 12, seed: 1);
        var labeled = all.Take(16).ToList();
        var (withUnlabeled, log) = Fit(labeled.Concat(Unlabeled(all.Skip(16))), Options());
        var (alone, _) = Fit(labeled, Options());

        log.Should().Contain(m => m.Contains("16 labeled rows train the classifier and the auxiliary loss; 80 rows whose label 'Label' is missing train the auxiliary loss only"));
        log.Should().Contain(m => m.Contains("96 rows (16 labeled, 80 unlabeled"));
        // Pre-training and joint training ran over all 96 rows: 6 batches of 16 per epoch, against 1 without them.
        withUnlabeled.LastTransformer.TrainingHistory.Select(e => e.Batches).Should().Equal(6, 6);
        alone.LastTransformer.TrainingHistory.Select(e => e.Batches).Should().Equal(1, 1);
        withUnlabeled.LastTransformer.TrainingHistory.Should().OnlyContain(e => e.AuxiliaryLoss > 0);
        // The joint epoch's accuracy and supervised loss are those of the 16 labeled rows only (a rate of 16ths).
        double accuracy = withUnlabeled.LastTransformer.TrainingHistory[1].TrainAccuracy;
        (accuracy * 16).Should().BeApproximately(Math.Round(accuracy * 16), 1e-9);
    }

    [Fact]
    public void WithoutAnAuxiliaryLossUnlabeledRowsAreSkippedWithAWarning()
    {
        var all = FirstTokenRows(48, 12, seed: 1);
        var (model, log) = Fit(all.Take(16).Concat(Unlabeled(all.Skip(16))), Options(AuxiliaryLoss.None));

        log.Should().Contain(m => m.Contains("Skipped 32 rows whose label 'Label' is missing") && m.Contains("AuxiliaryLoss = None"));
        model.LastTransformer.TrainingHistory.Should().OnlyContain(e => e.Batches == 1, "the 16 labeled rows alone: one batch per epoch");
    }

    [Fact]
    public void UnlabeledRowsAloneCannotTrainAClassifier()
    {
        var act = () => Fit(Unlabeled(FirstTokenRows(32, 12, seed: 1)), Options());

        act.Should().Throw<InvalidOperationException>().WithMessage("*no rows to train the classifier on*'Label'*32 unlabeled rows can train the auxiliary loss*");
    }

    [Fact]
    public void TheSupervisedLossOfAMixedBatchIsThatOfItsLabeledRowsAlone()
    {
        using var scope = NewDisposeScope();
        var shape = TrainingFixtures.Shape(AuxiliaryLoss.Reconstruct, vocabulary: 7, classes: 3, hidden: 32, embedding: 8, head: 16) with { DropConnect = 0 };
        var (network, decoder) = AuxLstmTrainer.InitializeModules(shape, 4);
        network.eval();
        var objective = new AuxObjective(network, decoder, new TruncatedBptt(3, null), CPU);
        var mixed = SequenceDataset.Discrete(7);
        mixed.AddTokens(new[] { 1, 4, 5, 6, 4 }, 0);
        mixed.AddTokens(new[] { 2, 6, 6, 5 }, -1);
        mixed.AddTokens(new[] { 3, 5, 4, 4, 6, 5 }, 2);
        mixed.AddTokens(new[] { 1, 5, 5 }, -1);
        var onlyLabeled = SequenceDataset.Discrete(7);
        onlyLabeled.AddTokens(new[] { 1, 4, 5, 6, 4 }, 0);
        onlyLabeled.AddTokens(new[] { 3, 5, 4, 4, 6, 5 }, 2);
        var segments = new[] { new AuxSegment(1, 4, 1, 3, true), new AuxSegment(3, 3, 0, 3, true) };

        var losses = objective.Compute(mixed.GetBatch(new[] { 0, 1, 2, 3 }), segments, supervised: true, 0, null);
        var reference = objective.Compute(onlyLabeled.GetBatch(new[] { 0, 1 }), Array.Empty<AuxSegment>(), supervised: true, 0, null);

        losses.Logits!.shape.Should().Equal(new long[] { 2, 3 }, "only the two labeled rows are classified");
        losses.Supervised!.item<float>().Should().BeApproximately(reference.Supervised!.item<float>(), 1e-5f);
        losses.Auxiliary.Should().NotBeNull("the unlabeled rows' segments train the decoder");

        // A batch of unlabeled rows only has no supervised loss, and its auxiliary loss still trains the main LSTM.
        var unlabeledOnly = objective.Compute(mixed.GetBatch(new[] { 1, 3 }), new[] { new AuxSegment(0, 4, 1, 3, true), new AuxSegment(1, 3, 0, 3, true) }, supervised: true, 0, null);
        unlabeledOnly.Supervised.Should().BeNull();
        unlabeledOnly.Total!.backward();
        network.SequenceParameters().Any(p => p.grad is not null && p.grad.abs().sum().item<float>() > 0).Should().BeTrue();
        decoder!.Dispose();
        network.Dispose();
    }

    /// <summary>
    /// <see cref="LongRecall"/> (the class at step 1 of 60, the supervised gradient reaching only the last 8 steps): the
    /// reconstruction loss is what teaches the LSTM to carry the class, and it needs no labels.
    /// </summary>
    [Fact]
    public void UnlabeledRowsMakeAnRLstmMoreAccurateThanTheLabeledRowsAlone()
    {
        const int classes = 4, length = 60, labeledCount = 40;
        AuxLstmClassifierOptions RLstm(int epochs) => new()
        {
            InputLevels = LongRecall.Levels(classes, fillers: 1),
            AuxiliaryLoss = AuxiliaryLoss.Reconstruct,
            HiddenSize = 32,
            EmbeddingSize = 16,
            ClassifierHiddenSize = 32,
            TruncationLength = 8,
            AuxiliaryTruncationLength = null,
            SegmentLength = 30,
            SegmentsPerSequence = 4,
            ReverseReconstruction = false,
            ForgetGateBias = 1, // the forget gates start open: this task's recall is learned in 10 epochs (see the lead's ablation)
            Epochs = epochs,
            BatchSize = 32,
            LearningRate = 3e-3,
            Seed = 1,
            Device = ComputeDevice.Cpu,
        };
        var rows = LongRecall.Generate(1000, length, classes, fillers: 1, seed: 1);
        var test = LongRecall.Generate(400, length, classes, fillers: 1, seed: 2);
        var labeled = rows.Take(labeledCount).ToList();
        var withUnlabeled = labeled.Concat(rows.Skip(labeledCount).Select(r => new SequenceRow { Label = "", Features = r.Features })).ToList();

        double Accuracy(List<SequenceRow> train, AuxLstmClassifierOptions options, List<string>? log = null)
        {
            var ml = new MLContext(seed: 1);
            if (log != null)
                ml.Log += (_, e) => log.Add(e.Message);
            var map = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(labeled));
            using var model = ml.Transforms.AuxLstmClassifier(options).Fit(map.Transform(ml.Data.LoadFromEnumerable(train)));
            return ml.MulticlassClassification.Evaluate(model.Transform(map.Transform(ml.Data.LoadFromEnumerable(test)))).MicroAccuracy;
        }

        var log = new List<string>();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        double semi = Accuracy(withUnlabeled, RLstm(20), log);
        double semiSeconds = watch.Elapsed.TotalSeconds;
        // The same model, with the same options, on the labeled rows alone. (Given as many mini-batches as 10 epochs above, 160
        // epochs of 2, the labeled rows alone did as well or better in our runs: 81.8 % with ForgetGateBias 1, 100 % with
        // TorchSharp's initialisation; the gain shown here is that of training on the data one has, not per step.)
        double alone = Accuracy(labeled, RLstm(20));
        _output.WriteLine($"{labeledCount} labeled + {1000 - labeledCount} unlabeled: {semi:P1} ({semiSeconds:F0} s); {labeledCount} labeled alone: {alone:P1}");

        log.Should().Contain(m => m.Contains($"{labeledCount} labeled rows train the classifier and the auxiliary loss; {1000 - labeledCount} rows whose label 'Label' is missing"));
        // After 10 epochs this was seed-sensitive: 100 % in 4 of 8 runs, 75 % in the others (the head, trained on 40
        // labels, leaving one pair of classes merged). After 20, seeds 1-4 in float32 and in bfloat16 all end at
        // ≥ 94 % (docs/runs/session6/probe-semi.txt), so the test holds in whichever precision Auto picks.
        semi.Should().BeGreaterThanOrEqualTo(0.9, "the unlabeled rows' reconstruction loss teaches the LSTM to carry the class");
        semi.Should().BeGreaterThan(alone + 0.25);
    }
}
