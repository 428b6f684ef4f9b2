using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>A real text pipeline: DBpedia csv → TokenizeIntoCharactersAsKeys → AuxLstmClassifier (character level).</summary>
public sealed class DbpediaFixture
{
    public static readonly uint[] Classes = { 1, 6, 9, 12 }; // Company, MeanOfTransportation, Village, Album

    public sealed class Document
    {
        [LoadColumn(0)]
        public uint Class { get; set; }

        [LoadColumn(2)]
        public string Text { get; set; } = "";
    }

    public DbpediaFixture()
    {
        Ml = new MLContext(seed: 2);
        var loaded = Ml.Data.LoadFromTextFile<Document>(TestData.Path("dbpedia", "train.csv"), separatorChar: ',', hasHeader: false, allowQuoting: true);
        // 30 training and 8 test documents for each of four classes, cut to their first 100 characters.
        var byClass = Ml.Data.CreateEnumerable<Document>(loaded, reuseRowObject: false)
            .Where(d => Classes.Contains(d.Class))
            .GroupBy(d => d.Class)
            .ToDictionary(g => g.Key, g => g.Take(38).Select(d => new Document { Class = d.Class, Text = d.Text[..Math.Min(100, d.Text.Length)] }).ToList());
        var train = Classes.SelectMany(c => byClass[c].Take(30)).ToList();
        var test = Classes.SelectMany(c => byClass[c].Skip(30)).ToList();
        Shuffle(train, new Random(1));
        TrainSet = Ml.Data.LoadFromEnumerable(train);
        TestSet = Ml.Data.LoadFromEnumerable(test);

        var pipeline = Ml.Transforms.Conversion.MapValueToKey("Label", "Class")
            .Append(Ml.Transforms.Text.TokenizeIntoCharactersAsKeys("Chars", "Text"))
            .Append(Ml.Transforms.AuxLstmClassifier(new AuxLstmClassifierOptions
            {
                SequenceColumnName = "Chars",
                HiddenSize = 16,
                EmbeddingSize = 8,
                ClassifierHiddenSize = 16,
                Epochs = 2,
                BatchSize = 20,
                LearningRate = 3e-3,
                AuxiliaryLoss = AuxiliaryLoss.Predict,
                SegmentLength = 8,
                TruncationLength = 40,
                AuxiliaryTruncationLength = 40,
                ScoringBatchSize = 12,
            }))
            .Append(Ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
        Model = pipeline.Fit(TrainSet);
        Scored = Model.Transform(TestSet);
    }

    public MLContext Ml { get; }

    public IDataView TrainSet { get; }

    public IDataView TestSet { get; }

    public ITransformer Model { get; }

    public IDataView Scored { get; }

    private static void Shuffle<T>(IList<T> list, Random rng)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}

public class DbpediaPipelineTests : IClassFixture<DbpediaFixture>
{
    private readonly DbpediaFixture _f;

    public DbpediaPipelineTests(DbpediaFixture fixture) => _f = fixture;

    [Fact]
    public void TokensAreKeysAndTheClassifierAddsItsColumns()
    {
        var schema = _f.Scored.Schema;
        schema["Chars"].Type.Should().BeOfType<VectorDataViewType>().Which.ItemType.Should().BeOfType<KeyDataViewType>();
        schema["PredictedLabel"].Type.Should().Be(schema["Label"].Type);
        schema["Score"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 4));
        schema["PredictedClass"].Type.Should().Be(NumberDataViewType.UInt32, "MapKeyToValue restores the numeric class values");
    }

    [Fact]
    public void EvaluatesAndRestoresTheOriginalClassNumbers()
    {
        var metrics = _f.Ml.MulticlassClassification.Evaluate(_f.Scored);
        metrics.MicroAccuracy.Should().BeInRange(0, 1);
        double.IsFinite(metrics.LogLoss).Should().BeTrue();
        metrics.ConfusionMatrix.NumberOfClasses.Should().Be(4);

        var predicted = _f.Scored.GetColumn<uint>("PredictedClass").ToArray();
        predicted.Should().HaveCount(32).And.OnlyContain(c => DbpediaFixture.Classes.Contains(c));
        var scores = _f.Scored.GetColumn<float[]>("Score").ToArray();
        scores.Should().OnlyContain(s => Math.Abs(s.Sum() - 1) < 1e-4);
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
    public void ALoadedModelScoresLikeTheTrainedOneInProcessAndInAPredictionEngine()
    {
        string path = Path.Combine(Path.GetTempPath(), $"auxrnn-dbpedia-{Guid.NewGuid():N}.zip");
        try
        {
            _f.Ml.Model.Save(_f.Model, _f.TestSet.Schema, path);
            var fresh = new MLContext(seed: 99);
            var loaded = fresh.Model.Load(path, out var inputSchema);
            inputSchema["Class"].Type.Should().Be(NumberDataViewType.UInt32);

            var expected = _f.Scored.GetColumn<float[]>("Score").ToArray();
            loaded.Transform(_f.TestSet).GetColumn<float[]>("Score").Should().BeEquivalentTo(expected, o => o.WithStrictOrdering());

            var engine = fresh.Model.CreatePredictionEngine<DbpediaFixture.Document, Prediction>(loaded);
            var document = fresh.Data.CreateEnumerable<DbpediaFixture.Document>(_f.TestSet, reuseRowObject: false).Last();
            var prediction = engine.Predict(document);
            prediction.Score.Should().Equal(expected[^1], (a, b) => Math.Abs(a - b) < 1e-5f);
            DbpediaFixture.Classes.Should().Contain(prediction.PredictedClass);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public sealed class Prediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();

        public uint PredictedClass { get; set; }
    }
}
