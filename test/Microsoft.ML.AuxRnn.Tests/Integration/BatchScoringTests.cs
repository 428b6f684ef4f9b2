using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

public class BatchScoringTests
{
    private static (MLContext Ml, IDataView Data, TransformerChain<AuxLstmClassifierTransformer> Model) Fit(int rows = 40, Action<AuxLstmClassifierOptions>? configure = null)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(rows, 3, 30));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(configure)))
            .Fit(data);
        return (ml, data, model);
    }

    [Fact]
    public void TransformIsLazyAndScoresInMiniBatches()
    {
        var (_, data, model) = Fit(40, o => o.ScoringBatchSize = 16);
        var classifier = model.LastTransformer;
        long before = classifier.ForwardPasses;

        var scored = model.Transform(data);
        classifier.ForwardPasses.Should().Be(before, "Transform only wraps the data");

        var scores = scored.GetColumn<float[]>("Score").ToArray();
        scores.Should().HaveCount(40);
        classifier.ForwardPasses.Should().Be(before + 3, "40 rows in batches of 16 take three forward passes, not 40");

        // A cursor that needs no output column runs no forward pass.
        scored.GetColumn<uint>("Label").Should().HaveCount(40);
        classifier.ForwardPasses.Should().Be(before + 3);
    }

    [Fact]
    public void EachRowIsReadToItsOwnLastStepWhateverThePaddingOfItsBatch()
    {
        // Rows of 3..30 steps share batches of 16 (padded to the longest); one at a time, none is padded.
        var (ml, data, model) = Fit(40, o => o.ScoringBatchSize = 16);
        var batched = model.Transform(data).GetColumn<float[]>("Score").ToArray();

        var engine = ml.Model.CreatePredictionEngine<SequenceRow, ScoreOnly>(model);
        var rows = ml.Data.CreateEnumerable<SequenceRow>(data, reuseRowObject: false).ToArray();
        rows.Select(r => r.Features.Length).Distinct().Should().HaveCountGreaterThan(5);
        for (int i = 0; i < rows.Length; i++)
            engine.Predict(rows[i]).Score.Should().Equal(batched[i], (a, b) => Math.Abs(a - b) < 1e-5f, $"row {i} ({rows[i].Features.Length} steps)");
    }

    [Fact]
    public void PredictionEngineGivesTheLabelsKeyTypeAndProbabilities()
    {
        var (ml, _, model) = Fit(32);
        var engine = ml.Model.CreatePredictionEngine<SequenceRow, KeyPrediction>(model);

        var prediction = engine.Predict(new SequenceRow { Features = Enumerable.Range(0, 10).Select(t => t / 10f).ToArray() });

        prediction.Score.Should().HaveCount(2);
        prediction.Score.Sum().Should().BeApproximately(1f, 1e-5f);
        prediction.PredictedLabel.Should().Be((uint)Array.IndexOf(prediction.Score, prediction.Score.Max()) + 1);
    }

    [Fact]
    public void OutputSchemaReportsBothColumnsWithTheirAnnotations()
    {
        var (_, data, model) = Fit(32);
        var inputSchema = model.First().GetOutputSchema(data.Schema);

        var schema = model.LastTransformer.GetOutputSchema(inputSchema);

        var predicted = schema["PredictedLabel"];
        predicted.Type.Should().Be(inputSchema["Label"].Type);
        VBuffer<ReadOnlyMemory<char>> keys = default;
        predicted.GetKeyValues(ref keys);
        keys.DenseValues().Select(k => k.ToString()).Should().Equal("up", "down");

        var score = schema["Score"];
        score.Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 2));
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.GetSlotNames(ref slots);
        slots.DenseValues().Select(k => k.ToString()).Should().Equal("up", "down");
        score.Annotations.Schema.Select(c => c.Name).Should().Contain(new[] { "ScoreColumnKind", "ScoreValueKind", "ScoreColumnSetId" });
    }

    [Fact]
    public void EstimatorOutputSchemaReportsBothColumns()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(8, 3, 5));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);

        var shape = ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions()).GetOutputSchema(ShapeOf(keyed.Schema));

        var predicted = shape.Single(c => c.Name == "PredictedLabel");
        predicted.IsKey.Should().BeTrue();
        predicted.Kind.Should().Be(SchemaShape.Column.VectorKind.Scalar);
        var score = shape.Single(c => c.Name == "Score");
        score.Kind.Should().Be(SchemaShape.Column.VectorKind.Vector);
        score.ItemType.Should().Be(NumberDataViewType.Single);
        shape.Select(c => c.Name).Should().Contain(keyed.Schema.Select(c => c.Name), "input columns pass through");
    }

    /// <summary>ML.NET's SchemaShape.Create (internal) : the shape estimators check.</summary>
    internal static SchemaShape ShapeOf(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!
            .Invoke(null, new object[] { schema })!;

    [Fact]
    public void ASeedFromTheMLContextMakesFitRepeatable()
    {
        static float[][] Scores(int seed)
        {
            var ml = new MLContext(seed);
            var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(32, 3, 12));
            var model = ml.Transforms.Conversion.MapValueToKey("Label")
                .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => o.Seed = null)))
                .Fit(data);
            return model.Transform(data).GetColumn<float[]>("Score").ToArray();
        }

        Scores(5).Should().BeEquivalentTo(Scores(5), o => o.WithStrictOrdering());
        Scores(6).Should().NotBeEquivalentTo(Scores(5), "another MLContext seed draws other initial weights");
    }

    [Fact]
    public void ShortTrainingLearnsAnEasyTaskAboveChance()
    {
        var (ml, _, model) = Fit(96, o => { o.Epochs = 4; o.LearningRate = 1e-2; o.HiddenSize = 16; });
        var test = ml.Data.LoadFromEnumerable(Synthetic.Trends(40, 3, 30, seed: 2));

        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));

        metrics.MicroAccuracy.Should().BeGreaterThan(0.7, "rising and falling sequences are easy (chance is 0.5)");
    }

    [Theory]
    [InlineData("text")]
    [InlineData("float")]
    [InlineData("bool")]
    public void LabelValuesOfAnyTypeSurviveSaveAndLoad(string kind)
    {
        var ml = new MLContext(seed: 1);
        var rows = Synthetic.Trends(24, 3, 8);
        IDataView data = kind switch
        {
            "float" => ml.Data.LoadFromEnumerable(rows.Select(r => new { Label = r.Label == "up" ? 2.5f : -1f, r.Features })),
            "bool" => ml.Data.LoadFromEnumerable(rows.Select(r => new { Label = r.Label == "up", r.Features })),
            _ => ml.Data.LoadFromEnumerable(rows),
        };
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions()))
            .Append(ml.Transforms.Conversion.MapKeyToValue("Restored", "PredictedLabel"))
            .Fit(data);
        string path = Path.Combine(Path.GetTempPath(), $"auxrnn-labels-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            var original = model.Transform(data);
            var reloaded = loaded.Transform(data);

            reloaded.Schema["Restored"].Type.Should().Be(data.Schema["Label"].Type);
            Preview(reloaded, "Restored").Should().Equal(Preview(original, "Restored"));
            Preview(reloaded, "Restored").Should().OnlyContain(v => Preview(data, "Label").Contains(v));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string[] Preview(IDataView data, string column) =>
        data.Preview(maxRows: 100).RowView.Select(r => r.Values.Single(kv => kv.Key == column).Value.ToString()!).ToArray();

    private sealed class ScoreOnly
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    private sealed class KeyPrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();

        [KeyType(2)]
        public uint PredictedLabel { get; set; }
    }
}
