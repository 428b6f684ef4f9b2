using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>As in ML.NET, output columns hide same-named input columns: re-scoring scored data, or two classifiers in one pipeline.</summary>
public class ColumnShadowingTests
{
    private static (MLContext Ml, IDataView Data, TransformerChain<AuxLstmClassifierTransformer> Model) Fit(int rows = 32)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(rows, 3, 20));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions()))
            .Fit(data);
        return (ml, data, model);
    }

    [Fact]
    public void RescoringScoredDataHidesTheOldColumnsAndGivesTheSameScores()
    {
        var (ml, data, model) = Fit();
        var scored = model.Transform(data);
        var first = scored.GetColumn<float[]>("Score").ToArray();

        var rescored = model.LastTransformer.Transform(scored);

        rescored.Schema.Count(c => c.Name == "Score").Should().Be(2, "the old Score stays, hidden");
        rescored.Schema.Where(c => c.Name == "Score").Count(c => !c.IsHidden).Should().Be(1);
        rescored.Schema["Score"].Index.Should().BeGreaterThan(scored.Schema["Score"].Index, "the visible Score is the new one");
        var second = rescored.GetColumn<float[]>("Score").ToArray();
        second.Should().HaveCount(first.Length);
        for (int i = 0; i < first.Length; i++)
            second[i].Should().Equal(first[i], (a, b) => Math.Abs(a - b) < 1e-6f, $"row {i}");
        rescored.GetColumn<uint>("PredictedLabel").Should().Equal(scored.GetColumn<uint>("PredictedLabel"));

        // Both the lazy batched view and a prediction engine take the new columns.
        // A prediction engine's input with a Score member (a stale score that must not come through) is scored too.
        var engine = ml.Model.CreatePredictionEngine<ScoredRow, ScoreOnly>(model.LastTransformer);
        var source = ml.Data.CreateEnumerable<SequenceRow>(data, reuseRowObject: false).First();
        var row = new ScoredRow { Label = source.Label, Features = source.Features, Score = new float[] { 0.25f, 0.75f } };
        engine.Predict(row).Score.Should().Equal(first[0], (a, b) => Math.Abs(a - b) < 1e-5f);
        engine.Dispose();
        model.LastTransformer.Dispose();
    }

    [Fact]
    public void TwoClassifiersInOnePipelineEachAddTheirColumnsAndTheSecondIsVisible()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(32, 3, 20));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => o.Seed = 1)))
            .Append(ml.Transforms.CopyColumns("FirstScore", "Score"))
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => { o.Seed = 2; o.HiddenSize = 32; })));

        var model = pipeline.Fit(data);
        var scored = model.Transform(data);

        scored.Schema.Count(c => c.Name == "PredictedLabel").Should().Be(2);
        scored.Schema.Count(c => c.Name == "Score").Should().Be(2);
        var firstScores = scored.GetColumn<float[]>("FirstScore").ToArray();
        var secondScores = scored.GetColumn<float[]>("Score").ToArray();
        secondScores.Should().HaveCount(32).And.OnlyContain(s => Math.Abs(s.Sum() - 1) < 1e-4);
        firstScores.Zip(secondScores).Should().Contain(p => !p.First.SequenceEqual(p.Second), "the visible Score is the second classifier's");

        var second = model.OfType<AuxLstmClassifierTransformer>().Last();
        var alone = second.Transform(ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data)).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < alone.Length; i++)
            secondScores[i].Should().Equal(alone[i], (a, b) => Math.Abs(a - b) < 1e-6f);
        ml.MulticlassClassification.Evaluate(scored).ConfusionMatrix.Counts.Sum(r => r.Sum()).Should().Be(32);
        foreach (var classifier in model.OfType<AuxLstmClassifierTransformer>())
            classifier.Dispose();
    }

    public sealed class ScoredRow
    {
        public string Label { get; set; } = "";

        public float[] Features { get; set; } = Array.Empty<float>();

        [VectorType(2)]
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    public sealed class ScoreOnly
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
