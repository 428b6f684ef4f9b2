using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

public class AuxLstmTrainerTests
{
    private static AuxLstmClassifierOptions Options(AuxiliaryLoss loss = AuxiliaryLoss.Reconstruct, int epochs = 2) => new()
    {
        AuxiliaryLoss = loss,
        HiddenSize = 8,
        EmbeddingSize = 4,
        ClassifierHiddenSize = 8,
        TruncationLength = 4,
        AuxiliaryTruncationLength = 5,
        SegmentLength = 6,
        Epochs = epochs,
        BatchSize = 8,
        LearningRate = 0.01,
    };

    private static SequenceDataset Data(int rows = 24, int seed = 1) => TrainingFixtures.FirstTokenTask(rows, 8, 16, classes: 3, vocabulary: 7, seed);

    private static NetworkShape ShapeOf(AuxLstmClassifierOptions o, SequenceDataset data) =>
        NetworkShape.From(o, data.IsDiscrete, data.Vocabulary, data.StepSize, 3);

    private static TrainingResult Train(AuxLstmClassifierOptions o, SequenceDataset data, int seed = 1, SequenceDataset? validation = null, MLContext? ml = null, Action<EpochReport, AuxLstmNetwork>? onEpoch = null)
    {
        var trainer = new AuxLstmTrainer(TrainingFixtures.Host(ml), o, seed) { EpochCompleted = onEpoch };
        return trainer.Train(data, validation, ShapeOf(o, data), CPU);
    }

    [Theory]
    [InlineData(AuxiliaryLoss.None)]
    [InlineData(AuxiliaryLoss.Reconstruct)]
    [InlineData(AuxiliaryLoss.Predict)]
    public void SameSeedSameWeightsDifferentSeedDifferentWeights(AuxiliaryLoss loss)
    {
        var data = Data();
        using var a = Train(Options(loss), data, seed: 7).Network;
        using var b = Train(Options(loss), data, seed: 7).Network;
        using var c = Train(Options(loss), data, seed: 8).Network;
        TrainingFixtures.SameWeights(TrainingFixtures.Snapshot(a), TrainingFixtures.Snapshot(b)).Should().BeTrue();
        TrainingFixtures.SameWeights(TrainingFixtures.Snapshot(a), TrainingFixtures.Snapshot(c)).Should().BeFalse();
    }

    [Theory]
    [InlineData(AuxiliaryLoss.Reconstruct, AuxOptimizer.RmsProp)]
    [InlineData(AuxiliaryLoss.Predict, AuxOptimizer.Adam)]
    public void PretrainingTouchesNoClassifierWeights(AuxiliaryLoss loss, AuxOptimizer optimizer)
    {
        var o = Options(loss, epochs: 0);
        o.PretrainEpochs = 2;
        o.Optimizer = optimizer;
        var data = Data();
        var (initial, decoder) = AuxLstmTrainer.InitializeModules(ShapeOf(o, data), 5);
        decoder?.Dispose();
        var before = TrainingFixtures.Snapshot(initial);
        var classifierBefore = initial.ClassifierParameters().Select(p => p.data<float>().ToArray()).ToArray();
        initial.Dispose();

        var result = Train(o, data, seed: 5);
        using var trained = result.Network;

        result.Epochs.Should().HaveCount(2).And.OnlyContain(r => r.Pretraining && r.AuxiliaryLoss > 0 && r.SupervisedLoss == 0);
        trained.ClassifierParameters().Select(p => p.data<float>().ToArray()).Should().BeEquivalentTo(classifierBefore, x => x.WithStrictOrdering());
        TrainingFixtures.SameWeights(before, TrainingFixtures.Snapshot(trained)).Should().BeFalse("pre-training trains the encoder and the LSTM");
    }

    [Fact]
    public void JointTrainingAfterPretrainingTrainsTheClassifierAndReportsBothPhases()
    {
        var o = Options(AuxiliaryLoss.Reconstruct, epochs: 2);
        o.PretrainEpochs = 2;
        var result = Train(o, Data());
        using var _ = result.Network;
        result.Epochs.Select(r => r.Pretraining).Should().Equal(true, true, false, false);
        result.Epochs.Select(r => r.Epoch).Should().Equal(1, 2, 3, 4);
        result.Epochs.Skip(2).Should().OnlyContain(r => r.SupervisedLoss > 0 && r.AuxiliaryLoss > 0);
        result.Epochs.Select(r => r.LearningRate).Should().Equal(0.01, 0.005, 0.01, 0.01); // halved from pre-training step 3 of 6
    }

    [Theory]
    [InlineData("none")]
    [InlineData("forward reconstruction")]
    [InlineData("predict")]
    [InlineData("distant past and spill")]
    [InlineData("three anchors")]
    [InlineData("one decoder layer")]
    [InlineData("three decoder layers")]
    [InlineData("scheduled sampling")]
    [InlineData("full BPTT")]
    [InlineData("labels train only the head")]
    [InlineData("adam")]
    [InlineData("continuous reconstruct")]
    [InlineData("continuous predict with sampling")]
    public void EveryMechanismTrainsEndToEnd(string setting)
    {
        var o = Options();
        var data = Data();
        switch (setting)
        {
            case "none": o.AuxiliaryLoss = AuxiliaryLoss.None; break;
            case "forward reconstruction": o.ReverseReconstruction = false; break;
            case "predict": o.AuxiliaryLoss = AuxiliaryLoss.Predict; break;
            case "distant past and spill": o.DistantPastRange = 5; o.SpillPastAnchor = 2; break;
            case "three anchors": o.SegmentsPerSequence = 3; break;
            case "one decoder layer": o.DecoderLayers = 1; break;
            case "three decoder layers": o.DecoderLayers = 3; break;
            case "scheduled sampling": o.ScheduledSamplingProbability = 0.5; o.ScheduledSamplingSteps = 4; break;
            case "full BPTT": o.TruncationLength = null; o.AuxiliaryTruncationLength = null; break;
            case "labels train only the head": o.TruncationLength = 0; break;
            case "adam": o.Optimizer = AuxOptimizer.Adam; o.LearningRateHalvingEpochs = 1; break;
            case "continuous reconstruct": o.StepSize = 2; data = TrainingFixtures.Sines(24, 12, 2, 3, 1); break;
            case "continuous predict with sampling":
                o.AuxiliaryLoss = AuxiliaryLoss.Predict; o.StepSize = 3; o.ScheduledSamplingProbability = 1; data = TrainingFixtures.Sines(24, 12, 3, 3, 1); break;
        }

        var result = Train(o, data);
        using var network = result.Network;
        result.Epochs.Should().HaveCount(2);
        result.Epochs.Should().OnlyContain(r => double.IsFinite(r.SupervisedLoss) && r.SupervisedLoss > 0 && double.IsFinite(r.AuxiliaryLoss));
        if (o.AuxiliaryLoss == AuxiliaryLoss.None)
            result.Epochs.Should().OnlyContain(r => r.AuxiliaryLoss == 0);
        else
            result.Epochs.Should().OnlyContain(r => r.AuxiliaryLoss > 0);
        network.training.Should().BeFalse("the trained network is returned in evaluation mode");
        var probabilities = network.PredictProbabilities(data.GetBatch(new[] { 0, 1, 2 }), CPU);
        probabilities.Should().HaveCount(9);
        probabilities.Chunk(3).Should().OnlyContain(p => Math.Abs(p.Sum() - 1) < 1e-4);
    }

    [Fact]
    public void ReportedSamplingProbabilityFollowsTheSchedule()
    {
        var o = Options(epochs: 3);
        o.ScheduledSamplingProbability = 0.6;
        o.ScheduledSamplingSteps = 10;
        var result = Train(o, Data()); // 3 batches per epoch: last steps 2, 5, 8
        using var _ = result.Network;
        result.Epochs.Select(r => r.SamplingProbability).Should().Equal(new[] { 0.6 * 0.8, 0.6 * 0.5, 0.6 * 0.2 },
            (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void NativeMemoryDoesNotGrowAcrossEpochs()
    {
        var o = Options(epochs: 6);
        o.ScheduledSamplingProbability = 0.3;
        var counts = new List<long>();
        var validation = Data(10, seed: 2);
        // Tensors that earlier tests left to the garbage collector must not be finalized during the count.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var result = Train(o, Data(), validation: validation, onEpoch: (_, _) => counts.Add(LiveTensors()));
        result.Network.Dispose();
        counts.Should().HaveCount(6);
        counts.Skip(1).Should().OnlyContain(c => c == counts[1], $"live tensors after each epoch were {string.Join(", ", counts)}");
    }

    /// <summary>MLContext.CancelExecution() is internal in ML.NET 5 (what AutoML and the experiment runners call).</summary>
    private static void CancelExecution(MLContext ml) =>
        typeof(MLContext).GetMethod("CancelExecution", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)!
            .Invoke(ml, null);

    /// <summary>Live tensor handles, without collecting garbage: only what was disposed deterministically is gone.</summary>
    private static long LiveTensors() => Tensor.TotalCount;

    /// <summary>Live tensor handles once earlier tests' garbage is finalized, so no collection during a measured run lowers its count.</summary>
    private static long SettledTensors()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Tensor.TotalCount;
    }

    [Fact]
    public void CancelExecutionStopsTrainingAndFreesItsTensors()
    {
        var data = Data();
        // A complete run, its network disposed, is the reference: TorchSharp 0.107 counts 2 handles per Linear module
        // that it never counts down (a counter, not memory: see LongJobTests.CompleteRunResidue).
        // In bfloat16 (what Auto picks on a CPU with AMX or AVX-512 BF16) the step runs on bfloat16 copies of the same
        // modules, whose Linear layers leave as many handles again.
        long before = SettledTensors();
        var complete = Train(Options(epochs: 1), data);
        complete.Network.Dispose();
        long completeRun = LiveTensors() - before;
        int moduleSets = complete.Epochs[0].Precision == ComputePrecision.BFloat16 ? 2 : 1;
        completeRun.Should().BeLessThan(20 * moduleSets);

        var ml = new MLContext(seed: 1);
        int epochs = 0;
        before = SettledTensors();
        var act = () => Train(Options(epochs: 5), data, ml: ml, onEpoch: (_, _) =>
        {
            epochs++;
            CancelExecution(ml);
        });
        act.Should().Throw<OperationCanceledException>();
        epochs.Should().Be(1, "training stops at the next batch");
        (LiveTensors() - before).Should().BeLessThanOrEqualTo(completeRun,
            "the cancelled run's network, decoder, optimizer state and batch tensors are all disposed");
    }

    [Fact]
    public void DivergingLossStopsTrainingNamingEpochAndBatch()
    {
        // Without clipping, RMSProp's first step at this rate moves weights by ±1e39 = ±∞: the next batch's loss is NaN.
        var o = Options(AuxiliaryLoss.None);
        o.LearningRate = 1e38;
        o.GradientClipNorm = 0;
        var act = () => Train(o, Data());
        act.Should().Throw<InvalidOperationException>().WithMessage("*diverged in epoch 1, batch 2*loss is NaN*LearningRate*");
    }

    [Fact]
    public void MissingLabelsAreRejectedNamingTheLabelColumnWithoutAnAuxiliaryLoss()
    {
        // With an auxiliary loss, unlabeled rows train it (see SemiSupervisedTests); without one they have nothing to train.
        var data = SequenceDataset.Discrete(7);
        data.AddTokens(new[] { 1, 2, 3 }, 0);
        data.AddTokens(new[] { 1, 2, 3 });
        var act = () => Train(Options(AuxiliaryLoss.None), data);
        act.Should().Throw<ArgumentException>().WithMessage("*Row 1*no label*'Label'*");
    }

    [Fact]
    public void ValidationKeepsTheBestEpochsWeights()
    {
        var o = Options(AuxiliaryLoss.None, epochs: 6);
        o.LearningRate = 0.05;
        o.TruncationLength = null;
        var data = Data(48);
        var validation = Data(30, seed: 3);
        var snapshots = new List<float[][]>();
        var result = Train(o, data, validation: validation, onEpoch: (_, n) => snapshots.Add(TrainingFixtures.Snapshot(n)));
        using var network = result.Network;

        var accuracies = result.Epochs.Select(r => r.ValidationAccuracy!.Value).ToList();
        int best = accuracies.IndexOf(accuracies.Max());
        TrainingFixtures.SameWeights(TrainingFixtures.Snapshot(network), snapshots[best]).Should().BeTrue($"epoch {best + 1} of {string.Join(", ", accuracies)} was best");
        new AuxLstmTrainer(TrainingFixtures.Host(), o, 1).Accuracy(network, validation, CPU).Should().Be(accuracies.Max());
    }

    [Fact]
    public void MaxTrainingTimeStopsTrainingEarlyAndCountsBatches()
    {
        var limited = Options(epochs: 1000);
        limited.MaxTrainingTime = TimeSpan.FromMilliseconds(300);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var result = Train(limited, Data());
        using var _ = result.Network;
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(60), "training must stop soon after its budget");
        result.Epochs.Count.Should().BeInRange(1, 999);
        result.Epochs.Should().OnlyContain(e => e.Batches >= 1);
        int batchesPerEpoch = (Data().Count + limited.BatchSize - 1) / limited.BatchSize;
        result.Epochs.Take(result.Epochs.Count - 1).Should().OnlyContain(e => e.Batches == batchesPerEpoch, "only the last epoch is cut short");
    }

    [Fact]
    public void ProgressIsLoggedPerEpoch()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => messages.Add(e.Message);
        using var _ = Train(Options(epochs: 2), Data(), ml: ml).Network;
        messages.Should().Contain(m => m.Contains("Epoch 1/2 (joint)")).And.Contain(m => m.Contains("Epoch 2/2 (joint)"));
    }

    [Fact]
    public void ACheckpointedRunResumesToTheSameWeights()
    {
        string folder = Path.Combine(Path.GetTempPath(), "auxrnn-checkpoint-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = Data();
            var validation = Data(10, seed: 4);
            var o = Options(epochs: 3);
            o.PretrainEpochs = 1;
            using var straight = Train(o, data, seed: 3, validation: validation).Network;

            var first = Options(epochs: 1);
            first.PretrainEpochs = 1;
            first.CheckpointFolder = folder;
            var partial = Train(first, data, seed: 3, validation: validation);
            partial.Network.Dispose();
            Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(folder, f))
                .Should().Equal(Path.Combine("data-" + data.ContentHash(), TrainingCheckpoint.FileName));

            var rest = Options(epochs: 3);
            rest.PretrainEpochs = 1;
            rest.CheckpointFolder = folder;
            var resumed = Train(rest, data, seed: 3, validation: validation);
            using var network = resumed.Network;
            resumed.Epochs.Select(r => r.Epoch).Should().Equal(1, 2, 3, 4);
            TrainingFixtures.SameWeights(TrainingFixtures.Snapshot(network), TrainingFixtures.Snapshot(straight)).Should().BeTrue();

            var other = Options(epochs: 3);
            other.CheckpointFolder = folder;
            other.SegmentLength = 5;
            var act = () => Train(other, data, seed: 3);
            act.Should().Throw<InvalidOperationException>().WithMessage("*CheckpointFolder*different*");
        }
        finally
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
    }
}
