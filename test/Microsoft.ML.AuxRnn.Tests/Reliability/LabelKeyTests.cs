using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// Label values met after training. Through the training pipeline's own key mapping an unseen value becomes the
/// missing key: the row is scored and evaluators skip it. A label keyed by another mapping (more classes, or the
/// same classes numbered otherwise) would make PredictedLabel incomparable with it: rejected, naming the column.
/// </summary>
public class LabelKeyTests
{
    private readonly MLContext _ml = new(seed: 1);

    private static List<SequenceRow> Rows(int count = 24, int seed = 1) => Synthetic.Trends(count, 3, 8, seed);

    private TransformerChain<AuxLstmClassifierTransformer> FitChain(List<SequenceRow> rows) =>
        _ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(_ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions()))
            .Fit(_ml.Data.LoadFromEnumerable(rows));

    [Fact]
    public void AnUnseenLabelValueThroughTheTrainingKeyMappingIsScoredAndLeftOutOfTheMetrics()
    {
        var model = FitChain(Rows());
        var known = Rows(16, seed: 2);
        var unseen = Rows(8, seed: 3).Select(r => new SequenceRow { Label = "sideways", Features = r.Features }).ToList();

        var scored = model.Transform(_ml.Data.LoadFromEnumerable(known.Concat(unseen)));

        scored.GetColumn<uint>("Label").Skip(known.Count).Should().OnlyContain(k => k == 0, "a value the mapping never saw is the missing key");
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        scores.Should().HaveCount(known.Count + unseen.Count).And.OnlyContain(s => s.All(float.IsFinite) && Math.Abs(s.Sum() - 1) < 1e-4);

        var withUnseen = _ml.MulticlassClassification.Evaluate(scored);
        var knownOnly = _ml.MulticlassClassification.Evaluate(model.Transform(_ml.Data.LoadFromEnumerable(known)));
        withUnseen.MicroAccuracy.Should().Be(knownOnly.MicroAccuracy, "rows with a missing label are not evaluated");
        withUnseen.ConfusionMatrix.Counts.Sum(r => r.Sum()).Should().Be(known.Count);
    }

    [Fact]
    public void ALabelKeyedByAMappingWithMoreClassesIsRejectedNamingTheLabel()
    {
        var classifier = FitChain(Rows()).LastTransformer;
        // The test data keyed on its own: it has a third class, so its key type differs from training's.
        var test = _ml.Data.LoadFromEnumerable(Rows(16, seed: 2).Append(new SequenceRow { Label = "sideways", Features = new[] { 1f, 1f } }));
        var keyedOnItsOwn = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(test).Transform(test);

        classifier.Invoking(c => c.Transform(keyedOnItsOwn)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("*Label column 'Label'*3 classes*trained on 2*");
        classifier.Invoking(c => c.GetOutputSchema(keyedOnItsOwn.Schema)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("*Label column 'Label'*");
    }

    [Fact]
    public void ALabelWithTheSameClassesNumberedOtherwiseIsRejectedNamingTheLabel()
    {
        var classifier = FitChain(Rows()).LastTransformer; // "up" (row 0) is key 1
        var test = _ml.Data.LoadFromEnumerable(Rows(16, seed: 2).Skip(1)); // "down" comes first: key 1 is "down"
        var keyedOnItsOwn = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(test).Transform(test);

        classifier.Invoking(c => c.Transform(keyedOnItsOwn)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("*Label column 'Label'*key 1 is 'down'*model's key 1 is 'up'*");
    }

    [Fact]
    public void ALabelThatIsNotAKeyIsIgnoredWhenScoring()
    {
        var classifier = FitChain(Rows()).LastTransformer;
        var numeric = _ml.Data.LoadFromEnumerable(Rows(8, seed: 2).Select(r => new { Label = 3.5f, r.Features }));
        classifier.Transform(numeric).GetColumn<float[]>("Score").Should().HaveCount(8);
    }

    [Fact]
    public void ASavedAndLoadedModelChecksTheLabelToo()
    {
        var model = FitChain(Rows());
        string path = Path.Combine(Path.GetTempPath(), $"auxrnn-labelkeys-{Guid.NewGuid():N}.zip");
        try
        {
            _ml.Model.Save(model.LastTransformer, null, path);
            var loaded = new MLContext().Model.Load(path, out _);
            var test = _ml.Data.LoadFromEnumerable(Rows(16, seed: 2).Skip(1));
            var keyedOnItsOwn = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(test).Transform(test);
            loaded.Invoking(m => m.Transform(keyedOnItsOwn)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label column 'Label'*");
            loaded.Transform(model.First().Transform(test)).GetColumn<float[]>("Score").Should().HaveCount(15, "the training mapping's keys are accepted");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AValidationSetKeyedByAnotherMappingIsRejectedNamingIt()
    {
        var train = _ml.Data.LoadFromEnumerable(Rows());
        var trainKeys = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(train);
        var validation = _ml.Data.LoadFromEnumerable(Rows(16, seed: 2).Skip(1));
        var otherKeys = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(validation).Transform(validation);

        _ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => o.ValidationSet = otherKeys))
            .Invoking(e => e.Fit(trainKeys.Transform(train))).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "ValidationSet").WithMessage("*ValidationSet*label column 'Label'*key 1 is 'down'*");
    }
}
