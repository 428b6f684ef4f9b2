using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

public class PipelineTests
{
    [Fact]
    public void SyntheticPipelineFitsEvaluatesSavesAndLoads()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(64, 5, 20));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions()));
        var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Console.WriteLine(metrics.MacroAccuracy);
        var path = Path.GetTempFileName();
        ml.Model.Save(model, data.Schema, path);
        var loaded = new MLContext().Model.Load(path, out _);
        var a = scored.GetColumn<float[]>("Score").ToArray();
        var b = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
        b.Should().BeEquivalentTo(a, o => o.WithStrictOrdering());
    }
}
