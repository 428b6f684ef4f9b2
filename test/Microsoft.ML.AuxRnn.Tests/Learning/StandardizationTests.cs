using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Learning;

/// <summary>
/// Continuous inputs work as given: the model standardises them with statistics taken in Fit (saved with it), so
/// pixel values of 0–255 train like the same values pre-scaled to [0, 1], and the squared-L2 auxiliary loss starts on
/// the cross-entropy's scale rather than 10⁴ times above it.
/// </summary>
public class StandardizationTests
{
    private static (double Accuracy, float[][] Scores, double FirstAuxiliaryLoss, AuxLstmClassifierTransformer Model) Train(float scale)
    {
        var ml = new MLContext(seed: 1);
        var rows = Synthetic.Trends(160, 20, 30, seed: 3).Select(r => new SequenceRow { Label = r.Label, Features = r.Features.Select(v => v * scale).ToArray() }).ToList();
        var test = Synthetic.Trends(80, 20, 30, seed: 4).Select(r => new SequenceRow { Label = r.Label, Features = r.Features.Select(v => v * scale).ToArray() }).ToList();
        var map = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows));
        var options = Synthetic.TinyOptions(o =>
        {
            o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct;
            o.HiddenSize = 16;
            o.EmbeddingSize = 16;
            o.SegmentLength = 8;
            o.TruncationLength = 6;
            o.Epochs = 3;
        });
        var model = ml.Transforms.AuxLstmClassifier(options).Fit(map.Transform(ml.Data.LoadFromEnumerable(rows)));
        var scored = model.Transform(map.Transform(ml.Data.LoadFromEnumerable(test)));
        double accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        return (accuracy, scores, model.TrainingHistory[0].AuxiliaryLoss, model);
    }

    [Fact]
    public void RawPixelRangeTrainsLikePreScaledValues()
    {
        var raw = Train(255f);
        var scaled = Train(1f);
        using (raw.Model)
        using (scaled.Model)
        {
            raw.Accuracy.Should().BeApproximately(scaled.Accuracy, 0.01, "standardisation makes the scale of the input irrelevant");
            raw.Accuracy.Should().BeGreaterThan(0.7, "the task is learnable in three epochs");
            for (int i = 0; i < raw.Scores.Length; i++)
                raw.Scores[i].Zip(scaled.Scores[i], (a, b) => Math.Abs(a - b)).Max().Should().BeLessThan(1e-2f, $"row {i} scores alike");
            raw.FirstAuxiliaryLoss.Should().BeLessThan(10, "the L2 loss of standardised steps starts near the cross-entropy's scale, not at 255²");
        }
    }

    [Fact]
    public void TheStandardisationIsTakenFromTheTrainingDataAndSavedWithTheModel()
    {
        var (_, scores, _, model) = Train(255f);
        using var owned = model;
        var ml = new MLContext(seed: 1);
        using var stream = new MemoryStream();
        var schema = ml.Data.LoadFromEnumerable(new[] { new SequenceRow() }).Schema;
        ml.Model.Save(model, null, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        var test = Synthetic.Trends(80, 20, 30, seed: 4).Select(r => new SequenceRow { Label = r.Label, Features = r.Features.Select(v => v * 255f).ToArray() }).ToList();
        var map = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Synthetic.Trends(160, 20, 30, seed: 3)));
        var reloaded = loaded.Transform(map.Transform(ml.Data.LoadFromEnumerable(test))).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < scores.Length; i++)
            reloaded[i].Should().Equal(scores[i], $"row {i}: the saved statistics standardise exactly as in training");
        var (mean, scale) = model.NetworkStandardization;
        mean.Single().Should().BeInRange(100, 160, "the mean of 0–255-scaled trends");
        scale.Single().Should().BeInRange(30, 120);
    }
}
