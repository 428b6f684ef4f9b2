using Microsoft.ML.AuxRnn.Training;

namespace Microsoft.ML.AuxRnn.Tests.Training;

public class TrainingScheduleTests
{
    [Fact]
    public void ScheduledSamplingAnnealsLinearlyToZero()
    {
        var schedule = new TrainingSchedule(new AuxLstmClassifierOptions { ScheduledSamplingProbability = 0.8, ScheduledSamplingSteps = 100 }, 10);
        schedule.SamplingProbability(0).Should().BeApproximately(0.8, 1e-12);
        schedule.SamplingProbability(25).Should().BeApproximately(0.6, 1e-12);
        schedule.SamplingProbability(50).Should().BeApproximately(0.4, 1e-12);
        schedule.SamplingProbability(100).Should().Be(0);
        schedule.SamplingProbability(1000).Should().Be(0);
        Enumerable.Range(0, 100).Select(s => schedule.SamplingProbability(s)).Should().BeInDescendingOrder();
    }

    [Fact]
    public void NoSamplingWithoutAnAuxiliaryLoss()
    {
        var schedule = new TrainingSchedule(new AuxLstmClassifierOptions { AuxiliaryLoss = AuxiliaryLoss.None, ScheduledSamplingProbability = 0.8, PretrainEpochs = 3 }, 10);
        schedule.SamplingProbability(0).Should().Be(0);
        schedule.PretrainEpochs.Should().Be(0, "pre-training needs an auxiliary loss");
    }

    [Fact]
    public void LearningRateHalvesHalfwayThroughPretrainingThenOnItsOwnSchedule()
    {
        var schedule = new TrainingSchedule(new AuxLstmClassifierOptions { LearningRate = 0.01, PretrainEpochs = 3, Epochs = 5, LearningRateHalvingEpochs = 2 }, batchesPerEpoch: 4);
        schedule.TotalEpochs.Should().Be(8);
        // 12 pre-training steps: 0..5 at the full rate, 6..11 at half.
        schedule.LearningRate(0, 0).Should().Be(0.01);
        schedule.LearningRate(1, 1).Should().Be(0.01);
        schedule.LearningRate(1, 2).Should().Be(0.005);
        schedule.LearningRate(2, 3).Should().Be(0.005);
        // Joint epochs 0..4 (overall 3..7): halved after every 2.
        schedule.IsPretraining(2).Should().BeTrue();
        schedule.IsPretraining(3).Should().BeFalse();
        new[] { 3, 4, 5, 6, 7 }.Select(e => schedule.LearningRate(e, 0)).Should().Equal(0.01, 0.01, 0.005, 0.005, 0.0025);
    }

    [Fact]
    public void NoHalvingByDefaultAfterPretraining()
    {
        var schedule = new TrainingSchedule(new AuxLstmClassifierOptions { LearningRate = 0.01, Epochs = 4 }, 3);
        Enumerable.Range(0, 4).Select(e => schedule.LearningRate(e, 2)).Should().OnlyContain(r => r == 0.01);
    }

    [Fact]
    public void EpochSeedsDifferByEpochStreamAndSeed()
    {
        var seeds = new[]
        {
            TrainingSchedule.EpochSeed(1, 0, 1), TrainingSchedule.EpochSeed(1, 1, 1), TrainingSchedule.EpochSeed(1, 0, 2), TrainingSchedule.EpochSeed(2, 0, 1),
        };
        seeds.Should().OnlyHaveUniqueItems();
        TrainingSchedule.EpochSeed(1, 0, 1).Should().Be(TrainingSchedule.EpochSeed(1, 0, 1));
        seeds.Should().OnlyContain(s => s >= 0);
    }
}

public class DecoderLayersOptionTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(9)]
    public void OutOfRangeDecoderLayersAreRejectedByName(int layers)
    {
        var act = () => new AuxLstmClassifierOptions { DecoderLayers = layers }.Validate();
        act.Should().Throw<ArgumentOutOfRangeException>().WithParameterName(nameof(AuxLstmClassifierOptions.DecoderLayers));
    }

    [Fact]
    public void TheDecoderHasTheRequestedLayers()
    {
        var shape = TrainingFixtures.Shape(AuxiliaryLoss.Reconstruct);
        var (network, decoder) = Microsoft.ML.AuxRnn.Training.AuxLstmTrainer.InitializeModules(shape, 1, decoderLayers: 3);
        using (network)
        using (decoder)
        {
            decoder!.Layers.Should().Be(3);
            decoder.named_parameters().Count(p => p.name.Contains("weight_hh")).Should().Be(3);
        }
    }
}
