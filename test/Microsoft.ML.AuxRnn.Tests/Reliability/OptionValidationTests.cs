using System.Globalization;
using System.Reflection;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// Every member of <see cref="AuxLstmClassifierOptions"/> with an invalid value is rejected when the estimator is
/// made (<c>mlContext.Transforms.AuxLstmClassifier(options)</c>), by an exception whose ParamName is the member.
/// </summary>
public class OptionValidationTests
{
    /// <summary>Members that have no invalid value (any bool, any seed, any data view: its schema is checked at Fit).</summary>
    private static readonly string[] NoInvalidValue =
    {
        nameof(AuxLstmClassifierOptions.ReverseReconstruction),
        nameof(AuxLstmClassifierOptions.ExactScheduledSampling),
        nameof(AuxLstmClassifierOptions.Seed),
        nameof(AuxLstmClassifierOptions.ValidationSet),
        nameof(AuxLstmClassifierOptions.CancellationToken),
    };

    [Theory]
    [InlineData("LabelColumnName", "")]
    [InlineData("LabelColumnName", " ")]
    [InlineData("LabelColumnName", null)]
    [InlineData("SequenceColumnName", "")]
    [InlineData("SequenceColumnName", null)]
    [InlineData("PredictedLabelColumnName", "\t")]
    [InlineData("ScoreColumnName", "")]
    [InlineData("ScoreColumnName", "PredictedLabel")] // the same output column twice
    [InlineData("EmbeddingColumnName", "")]
    [InlineData("EmbeddingColumnName", "Score")] // an output column twice
    [InlineData("StepSize", "0")]
    [InlineData("StepSize", "-1")]
    [InlineData("StepSize", "1000001")]
    [InlineData("InputLevels", "-1")]
    [InlineData("InputLevels", "16777216")]
    [InlineData("InputLevels", "256", "StepSize=3")] // levels are one token per value
    [InlineData("HiddenSize", "0")]
    [InlineData("HiddenSize", "-128")]
    [InlineData("HiddenSize", "65537")]
    [InlineData("HiddenSize", "1000000000")]
    [InlineData("EmbeddingSize", "0")]
    [InlineData("EmbeddingSize", "65537")]
    [InlineData("ClassifierHiddenSize", "0")]
    [InlineData("ClassifierHiddenSize", "65537")]
    [InlineData("DropConnect", "-0.1")]
    [InlineData("DropConnect", "1")]
    [InlineData("DropConnect", "NaN")]
    [InlineData("AuxiliaryLoss", "7")]
    [InlineData("TruncationLength", "-1")]
    [InlineData("AuxiliaryTruncationLength", "-1")]
    [InlineData("SegmentLength", "1")]
    [InlineData("SegmentLength", "0")]
    [InlineData("SegmentLength", "-600")]
    [InlineData("SegmentsPerSequence", "0")]
    [InlineData("SegmentsPerSequence", "1025")]
    [InlineData("DistantPastRange", "-1")]
    [InlineData("SpillPastAnchor", "-1")]
    [InlineData("SpillPastAnchor", "600")] // a segment spilling past its anchor by its whole length or more
    [InlineData("SpillPastAnchor", "5", "SegmentLength=5")]
    [InlineData("ForgetGateBias", "NaN")]
    [InlineData("ForgetGateBias", "101")]
    [InlineData("DecoderLayers", "0")]
    [InlineData("DecoderLayers", "9")]
    [InlineData("ScheduledSamplingProbability", "-0.1")]
    [InlineData("ScheduledSamplingProbability", "1.01")]
    [InlineData("ScheduledSamplingProbability", "NaN")]
    [InlineData("ScheduledSamplingSteps", "0")]
    [InlineData("ScheduledSamplingSteps", "-1")]
    [InlineData("PretrainEpochs", "-1")]
    [InlineData("Epochs", "-1")]
    [InlineData("Epochs", "0")] // and no pre-training: nothing to train
    [InlineData("BatchSize", "0")]
    [InlineData("BatchSize", "-16")]
    [InlineData("BatchSize", "1048577")]
    [InlineData("LearningRate", "0")]
    [InlineData("LearningRate", "-0.001")]
    [InlineData("LearningRate", "NaN")]
    [InlineData("LearningRate", "Infinity")]
    [InlineData("Optimizer", "5")]
    [InlineData("LearningRateHalvingEpochs", "-1")]
    [InlineData("GradientClipNorm", "-1")]
    [InlineData("GradientClipNorm", "NaN")]
    [InlineData("GradientClipNorm", "Infinity")]
    [InlineData("Device", "9")]
    [InlineData("CpuTuning", "7")]
    [InlineData("Precision", "5")]
    [InlineData("ShuffleBufferMegabytes", "0")]
    [InlineData("ShuffleBufferMegabytes", "-1")]
    [InlineData("ShuffleBufferMegabytes", "1048577")]
    [InlineData("ScoringBatchSize", "0")]
    [InlineData("ScoringBatchSize", "1048577")] // larger than a saved model may claim: it could not be loaded again
    [InlineData("NumberOfThreads", "0")]
    [InlineData("NumberOfThreads", "1025")]
    [InlineData("MaxTrainingTime", "00:00:00")]
    [InlineData("MaxTrainingTime", "-00:00:01")]
    [InlineData("CheckpointFolder", "")]
    [InlineData("CheckpointFolder", "   ")]
    [InlineData("CheckpointFolder", "bad\0folder")]
    public void AnInvalidValueIsRejectedAtConstructionNamingTheMember(string member, string? value, string? also = null)
    {
        var options = new AuxLstmClassifierOptions();
        if (also != null)
            Set(options, also.Split('=')[0], also.Split('=')[1]);
        Set(options, member, value);
        var ml = new MLContext(seed: 1);

        var act = () => ml.Transforms.AuxLstmClassifier(options);

        var property = typeof(AuxLstmClassifierOptions).GetProperty(member)!;
        var thrown = act.Should().Throw<ArgumentException>().Which;
        thrown.ParamName.Should().Be(member);
        thrown.Message.Should().Contain(member);
        if (property.PropertyType != typeof(string))
            thrown.Should().BeOfType<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void EveryOptionIsCoveredByTheInvalidValueTheory()
    {
        var tested = typeof(OptionValidationTests).GetMethod(nameof(AnInvalidValueIsRejectedAtConstructionNamingTheMember))!
            .GetCustomAttributes<InlineDataAttribute>()
            .Select(a => (string)a.GetData(null!).Single()[0])
            .ToHashSet();
        var members = typeof(AuxLstmClassifierOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name);

        members.Except(NoInvalidValue).Should().BeSubsetOf(tested, "every option with an invalid value needs a case above");
        tested.Concat(NoInvalidValue).Should().BeSubsetOf(members);
    }

    [Fact]
    public void TheDefaultsAndTheLimitsThemselvesAreValid()
    {
        var ml = new MLContext(seed: 1);
        ml.Transforms.AuxLstmClassifier(new AuxLstmClassifierOptions()).Should().NotBeNull();
        var limits = new AuxLstmClassifierOptions
        {
            StepSize = 1, InputLevels = 16_777_215, HiddenSize = 65_536, EmbeddingSize = 1, ClassifierHiddenSize = 65_536, DropConnect = 0,
            TruncationLength = 0, AuxiliaryTruncationLength = null, SegmentLength = 2, SegmentsPerSequence = 1024, SpillPastAnchor = 1,
            DecoderLayers = 8, ScheduledSamplingProbability = 1, Epochs = 0, PretrainEpochs = 1, BatchSize = 1 << 20,
            LearningRate = double.Epsilon, GradientClipNorm = 0, ScoringBatchSize = 1 << 20, NumberOfThreads = 1024,
            MaxTrainingTime = TimeSpan.FromTicks(1), CheckpointFolder = "relative/folder", ShuffleBufferMegabytes = 1 << 20,
        };
        ml.Transforms.AuxLstmClassifier(limits).Options.HiddenSize.Should().Be(65_536);
    }

    [Fact]
    public void ACheckpointFolderThatIsAFileIsNamedBeforeTrainingStarts()
    {
        string file = Path.GetTempFileName();
        try
        {
            var ml = new MLContext(seed: 1);
            var raw = ml.Data.LoadFromEnumerable(Integration.Synthetic.Trends(16, 3, 6));
            var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
            var messages = new List<string>();
            ml.Log += (_, e) => messages.Add(e.Message);
            var estimator = ml.Transforms.AuxLstmClassifier(Integration.Synthetic.TinyOptions(o => o.CheckpointFolder = file));

            estimator.Invoking(e => e.Fit(data)).Should().Throw<ArgumentException>()
                .Where(e => e.ParamName == "CheckpointFolder").WithMessage($"*CheckpointFolder*{file}*");
            messages.Should().NotContain(m => m.Contains("Epoch 1/"), "no epoch is trained (and lost) before the folder is found unusable");
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void Set(AuxLstmClassifierOptions options, string member, string? text)
    {
        var property = typeof(AuxLstmClassifierOptions).GetProperty(member) ?? throw new ArgumentException($"No option '{member}'.");
        var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        object? value = text == null ? null
            : type == typeof(string) ? text
            : type.IsEnum ? Enum.ToObject(type, int.Parse(text, CultureInfo.InvariantCulture))
            : type == typeof(TimeSpan) ? TimeSpan.Parse(text, CultureInfo.InvariantCulture)
            : Convert.ChangeType(text, type, CultureInfo.InvariantCulture);
        property.SetValue(options, value);
    }
}
