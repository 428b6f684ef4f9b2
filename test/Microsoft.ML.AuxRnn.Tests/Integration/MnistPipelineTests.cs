using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>A real image pipeline: MNIST PNG files → LoadImages → ResizeImages → ExtractPixels → AuxLstmClassifier.</summary>
public sealed class MnistFixture
{
    public sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";

        public string Digit { get; set; } = "";
    }

    public MnistFixture()
    {
        Folder = TestData.Path("mnist", "png-sample");
        Ml = new MLContext(seed: 1);
        Ml.Log += (_, e) => { lock (Log) Log.Add(e.Message); };
        // 10 training and 4 test images per digit, read from the PNG files; 14×14 keeps the test quick (196 steps).
        var train = new List<ImageRow>();
        var test = new List<ImageRow>();
        for (int digit = 0; digit < 10; digit++)
        {
            var files = Directory.GetFiles(Path.Combine(Folder, digit.ToString())).Order(StringComparer.Ordinal).ToArray();
            train.AddRange(files.Take(10).Select(f => new ImageRow { ImagePath = Path.GetRelativePath(Folder, f), Digit = digit.ToString() }));
            test.AddRange(files.Skip(10).Take(4).Select(f => new ImageRow { ImagePath = Path.GetRelativePath(Folder, f), Digit = digit.ToString() }));
        }
        TrainSet = Ml.Data.LoadFromEnumerable(train);
        TestSet = Ml.Data.LoadFromEnumerable(test);

        var pipeline = Ml.Transforms.LoadImages("Image", Folder, "ImagePath")
            .Append(Ml.Transforms.ResizeImages("Image", 14, 14))
            // The PNGs are grey, so every colour channel holds the grey level: extract one (0..255, unscaled).
            .Append(Ml.Transforms.ExtractPixels("Pixels", "Image", colorsToExtract: ImagePixelExtractingEstimator.ColorBits.Red))
            .Append(Ml.Transforms.Conversion.MapValueToKey("Label", "Digit"))
            .Append(Ml.Transforms.AuxLstmClassifier(new AuxLstmClassifierOptions
            {
                SequenceColumnName = "Pixels",
                InputLevels = 256, // pixel intensities embedded as 256 tokens, as in the paper
                HiddenSize = 16,
                EmbeddingSize = 8,
                ClassifierHiddenSize = 16,
                Epochs = 2,
                BatchSize = 20,
                LearningRate = 3e-3,
                AuxiliaryLoss = AuxiliaryLoss.Reconstruct,
                SegmentLength = 8,
                TruncationLength = 50,
                AuxiliaryTruncationLength = 50,
                ScoringBatchSize = 16,
            }))
            .Append(Ml.Transforms.Conversion.MapKeyToValue("PredictedDigit", "PredictedLabel"));
        Model = pipeline.Fit(TrainSet);
        Scored = Model.Transform(TestSet);
    }

    public string Folder { get; }

    public MLContext Ml { get; }

    public List<string> Log { get; } = new();

    public IDataView TrainSet { get; }

    public IDataView TestSet { get; }

    public TransformerChain<KeyToValueMappingTransformer> Model { get; }

    public IDataView Scored { get; }

    public AuxLstmClassifierTransformer Classifier => Model.OfType<AuxLstmClassifierTransformer>().Single();
}

public class MnistPipelineTests : IClassFixture<MnistFixture>
{
    private readonly MnistFixture _f;

    public MnistPipelineTests(MnistFixture fixture) => _f = fixture;

    [Fact]
    public void EvaluatesWithMulticlassMetrics()
    {
        var metrics = _f.Ml.MulticlassClassification.Evaluate(_f.Scored);

        metrics.MicroAccuracy.Should().BeInRange(0, 1);
        metrics.MacroAccuracy.Should().BeInRange(0, 1);
        double.IsFinite(metrics.LogLoss).Should().BeTrue();
        metrics.ConfusionMatrix.NumberOfClasses.Should().Be(10);
        metrics.ConfusionMatrix.Counts.Sum(row => row.Sum()).Should().Be(40);
    }

    [Fact]
    public void ScoresAreProbabilitiesAndPredictedLabelsMapBackToDigits()
    {
        var schema = _f.Scored.Schema;
        schema["Score"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 10));
        VBuffer<ReadOnlyMemory<char>> slotNames = default;
        schema["Score"].GetSlotNames(ref slotNames);
        var digitOrder = slotNames.DenseValues().Select(s => s.ToString()).ToArray();
        digitOrder.Should().BeEquivalentTo(Enumerable.Range(0, 10).Select(d => d.ToString()));
        schema["PredictedLabel"].Type.Should().Be(schema["Label"].Type);

        var scores = _f.Scored.GetColumn<float[]>("Score").ToArray();
        var predicted = _f.Scored.GetColumn<uint>("PredictedLabel").ToArray();
        var predictedDigits = _f.Scored.GetColumn<ReadOnlyMemory<char>>("PredictedDigit").Select(d => d.ToString()).ToArray();
        scores.Should().HaveCount(40);
        for (int i = 0; i < scores.Length; i++)
        {
            scores[i].Should().OnlyContain(p => p >= 0 && p <= 1);
            scores[i].Sum().Should().BeApproximately(1f, 1e-4f);
            int argmax = Array.IndexOf(scores[i], scores[i].Max());
            predicted[i].Should().Be((uint)argmax + 1);
            predictedDigits[i].Should().Be(digitOrder[argmax], "MapKeyToValue restores the original digit of the predicted key");
        }
    }

    [Fact]
    public void ALoadedModelScoresBitForBitInAFreshProcess()
    {
        var expected = _f.Scored.GetColumn<float[]>("Score").ToArray();

        var child = ConsumerProgram.ScoreInChildProcess(_f.Ml, _f.Model, _f.TestSet);

        child.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
            child[i].Should().Equal(expected[i], (a, b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b), $"row {i}");
    }

    [Fact]
    public void APredictionEngineScoresOneImage()
    {
        var engine = _f.Ml.Model.CreatePredictionEngine<MnistFixture.ImageRow, Prediction>(_f.Model);
        var batchScores = _f.Scored.GetColumn<float[]>("Score").ToArray();
        var firstTest = _f.Ml.Data.CreateEnumerable<MnistFixture.ImageRow>(_f.TestSet, reuseRowObject: false).First();

        var prediction = engine.Predict(firstTest);

        prediction.Score.Should().HaveCount(10);
        prediction.Score.Sum().Should().BeApproximately(1f, 1e-4f);
        prediction.Score.Should().Equal(batchScores[0], (a, b) => Math.Abs(a - b) < 1e-5f);
        prediction.PredictedDigit.Should().MatchRegex("^[0-9]$");
    }

    [Fact]
    public void FitReportsEpochsOnTheMLContextLog()
    {
        string[] log;
        lock (_f.Log)
            log = _f.Log.ToArray();
        log.Should().Contain(m => m.Contains("AuxLstmClassifier", StringComparison.Ordinal) && m.Contains("rows", StringComparison.Ordinal));
        log.Where(m => m.Contains("Epoch", StringComparison.OrdinalIgnoreCase) && m.Contains("loss", StringComparison.OrdinalIgnoreCase))
            .Should().HaveCountGreaterThanOrEqualTo(2, "each of the two epochs reports its loss");
    }

    public sealed class Prediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();

        public string PredictedDigit { get; set; } = "";
    }
}
