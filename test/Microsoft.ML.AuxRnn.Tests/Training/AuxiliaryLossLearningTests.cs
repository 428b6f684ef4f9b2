using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>The auxiliary objectives are learnable: pre-training on them lowers them well below where they start.</summary>
public class AuxiliaryLossLearningTests
{
    private readonly ITestOutputHelper _output;

    public AuxiliaryLossLearningTests(ITestOutputHelper output) => _output = output;

    private IReadOnlyList<double> PretrainingLosses(AuxLstmClassifierOptions options, SequenceDataset data)
    {
        options.HiddenSize = 16;
        options.EmbeddingSize = 8;
        options.ClassifierHiddenSize = 16;
        options.BatchSize = 16;
        options.LearningRate = 0.01;
        options.Epochs = 0;
        options.PretrainEpochs = 8;
        var shape = NetworkShape.From(options, data.IsDiscrete, data.Vocabulary, data.StepSize, 3);
        var result = new AuxLstmTrainer(TrainingFixtures.Host(), options, 1).Train(data, null, shape, CPU);
        result.Network.Dispose();
        var losses = result.Epochs.Select(e => e.AuxiliaryLoss).ToList();
        _output.WriteLine($"{options.AuxiliaryLoss}: {string.Join(" ", losses.Select(a => a.ToString("F3")))}");
        return losses;
    }

    [Fact]
    public void ReconstructionOfTokensIsLearned()
    {
        // Rows: a label token then random noise tokens; the decoder must recall the 2 steps before the last one.
        var data = TrainingFixtures.FirstTokenTask(256, 6, 10, classes: 3, vocabulary: 7, seed: 1);
        var losses = PretrainingLosses(new AuxLstmClassifierOptions { AuxiliaryLoss = AuxiliaryLoss.Reconstruct, SegmentLength = 3, TruncationLength = 2, AuxiliaryTruncationLength = 10 }, data);
        // Every target is one of 3 equally likely tokens: without memory of the steps before the anchor the
        // cross-entropy cannot go below ln 3.
        losses[^1].Should().BeLessThan(0.8 * Math.Log(3), "the anchor state remembers the segment");
    }

    [Fact]
    public void PredictionOfContinuousValuesIsLearned()
    {
        var data = TrainingFixtures.Sines(128, 30, 2, 3, seed: 1);
        var losses = PretrainingLosses(new AuxLstmClassifierOptions { AuxiliaryLoss = AuxiliaryLoss.Predict, StepSize = 2, SegmentLength = 10, TruncationLength = 5, AuxiliaryTruncationLength = 10 }, data);
        losses[^1].Should().BeLessThan(0.5 * losses[0]);
    }
}
