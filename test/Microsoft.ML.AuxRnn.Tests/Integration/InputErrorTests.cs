using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>Wrong schemas and bad rows give managed errors that name the column (or option) at fault.</summary>
public class InputErrorTests
{
    private readonly MLContext _ml = new(seed: 1);

    private IDataView Keyed(IEnumerable<SequenceRow> rows) =>
        _ml.Transforms.Conversion.MapValueToKey("Label").Fit(_ml.Data.LoadFromEnumerable(rows)).Transform(_ml.Data.LoadFromEnumerable(rows));

    private AuxLstmClassifierEstimator Estimator(Action<AuxLstmClassifierOptions>? configure = null) =>
        _ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(configure));

    private static List<SequenceRow> Rows(int count = 16) => Synthetic.Trends(count, 3, 8);

    private static List<SequenceRow> WithRow(SequenceRow bad, int at = 5)
    {
        var rows = Rows();
        rows.Insert(at, bad);
        return rows;
    }

    // ---- options (every invalid value of every member: Reliability/OptionValidationTests) ----

    [Fact]
    public void TheSimpleOverloadUsesItsArguments()
    {
        var options = _ml.Transforms.AuxLstmClassifier("Target", "Pixels", AuxiliaryLoss.Predict).Options;
        options.LabelColumnName.Should().Be("Target");
        options.SequenceColumnName.Should().Be("Pixels");
        options.AuxiliaryLoss.Should().Be(AuxiliaryLoss.Predict);
    }

    // ---- schema, at Fit and in GetOutputSchema ----

    [Fact]
    public void AMissingSequenceColumnIsNamed()
    {
        var data = Keyed(Rows());
        Estimator(o => o.SequenceColumnName = "Pixels").Invoking(e => e.Fit(data))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Pixels*");
        Estimator(o => o.SequenceColumnName = "Pixels").Invoking(e => e.GetOutputSchema(BatchScoringTests.ShapeOf(data.Schema)))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Pixels*");
    }

    [Fact]
    public void AMissingLabelColumnIsNamed()
    {
        var data = Keyed(Rows());
        Estimator(o => o.LabelColumnName = "Digit").Invoking(e => e.Fit(data))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Digit*");
        Estimator(o => o.LabelColumnName = "Digit").Invoking(e => e.GetOutputSchema(BatchScoringTests.ShapeOf(data.Schema)))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Digit*");
    }

    [Fact]
    public void ALabelThatIsNotAKeyIsNamed()
    {
        var data = _ml.Data.LoadFromEnumerable(Rows()); // text label, no MapValueToKey
        Estimator().Invoking(e => e.Fit(data))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label*key*");
        Estimator().Invoking(e => e.GetOutputSchema(BatchScoringTests.ShapeOf(data.Schema)))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label*key*");
    }

    [Fact]
    public void ASequenceThatIsNotAVectorOfSingleOrKeysIsNamed()
    {
        var scalar = _ml.Data.LoadFromEnumerable(Rows().Select(r => new { Label = r.Label, Features = r.Features[0] }));
        var doubles = _ml.Data.LoadFromEnumerable(Rows().Select(r => new { Label = r.Label, Features = r.Features.Select(v => (double)v).ToArray() }));
        foreach (var raw in new[] { scalar, doubles })
        {
            var data = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
            Estimator().Invoking(e => e.Fit(data))
                .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");
        }
        var scalarKeyed = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(scalar).Transform(scalar);
        Estimator().Invoking(e => e.GetOutputSchema(BatchScoringTests.ShapeOf(scalarKeyed.Schema)))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");
    }

    [Fact]
    public void AStepSizeThatDoesNotDivideAKnownVectorSizeIsNamed()
    {
        var raw = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 8).Select(i => new FixedRow { Label = i % 2 == 0 ? "a" : "b", Features = new float[12] }));
        var data = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
        Estimator(o => o.StepSize = 5).Invoking(e => e.Fit(data))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*StepSize*Features*");
    }

    [Fact]
    public void AValidationSetMustHaveTheTrainingColumnsTypes()
    {
        var raw = _ml.Data.LoadFromEnumerable(Rows());
        var keyer = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw);
        var train = keyer.Transform(raw);
        var validation = keyer.Transform(_ml.Data.LoadFromEnumerable(Synthetic.Trends(8, 3, 8, seed: 5)));
        Estimator(o => o.ValidationSet = validation).Fit(train).ClassCount.Should().Be(2);

        var doubles = _ml.Data.LoadFromEnumerable(Rows().Select(r => new { r.Label, Features = r.Features.Select(v => (double)v).ToArray() }));
        var badValidation = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(doubles).Transform(doubles);
        Estimator(o => o.ValidationSet = badValidation).Invoking(e => e.Fit(train))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");

        var threeLabels = _ml.Transforms.Conversion.MapValueToKey("Label")
            .Fit(_ml.Data.LoadFromEnumerable(Rows().Append(new SequenceRow { Label = "flat", Features = new[] { 1f } })));
        Estimator(o => o.ValidationSet = threeLabels.Transform(raw)).Invoking(e => e.Fit(train))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label*");
    }

    // ---- rows, at Fit ----

    [Fact]
    public void AVariableLengthRowThatIsNotAWholeNumberOfStepsIsNamed()
    {
        var rows = Rows().Select(r => new SequenceRow { Label = r.Label, Features = r.Features.Take(4).ToArray() }).ToList();
        rows[3].Features = new float[] { 1, 2, 3 };
        Estimator(o => o.StepSize = 2).Invoking(e => e.Fit(Keyed(rows)))
            .Should().Throw<InvalidOperationException>().WithMessage("Row 3 of sequence column 'Features'*3 values*StepSize = 2*");
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteValuesAreRejectedAtFit(float bad)
    {
        var data = Keyed(WithRow(new SequenceRow { Label = "up", Features = new[] { 0.1f, bad, 0.3f } }));
        Estimator().Invoking(e => e.Fit(data))
            .Should().Throw<InvalidOperationException>().WithMessage("Row 5 of sequence column 'Features' has*index 1*finite*");
    }

    [Fact]
    public void AnEmptyRowIsRejectedAtFit()
    {
        var data = Keyed(WithRow(new SequenceRow { Label = "up", Features = Array.Empty<float>() }));
        Estimator().Invoking(e => e.Fit(data))
            .Should().Throw<InvalidOperationException>().WithMessage("Row 5 of sequence column 'Features' is empty*");
    }

    [Theory]
    [InlineData(256f)]
    [InlineData(-1f)]
    [InlineData(3.5f)]
    public void LevelsOutOfRangeOrNotIntegersAreNamed(float bad)
    {
        var rows = Rows().Select(r => new SequenceRow { Label = r.Label, Features = r.Features.Select(v => MathF.Round(Math.Clamp(v, 0, 1) * 255)).ToArray() }).ToList();
        rows[7].Features[2] = bad;
        Estimator(o => o.InputLevels = 256).Invoking(e => e.Fit(Keyed(rows)))
            .Should().Throw<InvalidOperationException>().WithMessage("Row 7 of sequence column 'Features'*index 2*InputLevels = 256*");
    }

    [Fact]
    public void NoRowsAreRejected()
    {
        var raw = _ml.Data.LoadFromEnumerable(Rows());
        var keyer = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw);
        var empty = keyer.Transform(_ml.Data.LoadFromEnumerable(new List<SequenceRow>()));
        Estimator().Invoking(e => e.Fit(empty))
            .Should().Throw<InvalidOperationException>().WithMessage("*no rows*Label*");

        // Labels the key mapping does not know are missing keys (0): such rows are skipped, leaving none.
        var unknownLabels = keyer.Transform(_ml.Data.LoadFromEnumerable(Rows().Select(r => new SequenceRow { Label = "sideways", Features = r.Features })));
        Estimator().Invoking(e => e.Fit(unknownLabels))
            .Should().Throw<InvalidOperationException>().WithMessage("*no rows*Label*");
    }

    [Fact]
    public void ASingleClassIsRejected()
    {
        // One label value: the key type itself has one class.
        var oneValue = Keyed(Rows().Select(r => new SequenceRow { Label = "up", Features = r.Features }));
        Estimator().Invoking(e => e.Fit(oneValue))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label*single class*");

        // Two keys, but only one of them among the rows to train on.
        var raw = _ml.Data.LoadFromEnumerable(Rows());
        var keyer = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw);
        var onlyUp = keyer.Transform(_ml.Data.LoadFromEnumerable(Rows().Where(r => r.Label == "up")));
        Estimator().Invoking(e => e.Fit(onlyUp))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Label*single class*");
    }

    // ---- scoring ----

    private AuxLstmClassifierTransformer Trained(IDataView data, Action<AuxLstmClassifierOptions>? configure = null) =>
        Estimator(configure).Fit(data);

    [Fact]
    public void ScoringWithoutTheSequenceColumnNamesIt()
    {
        var model = Trained(Keyed(Rows()));
        var noFeatures = _ml.Data.LoadFromEnumerable(Rows().Select(r => new { r.Label, Pixels = r.Features }));

        model.Invoking(m => m.Transform(noFeatures)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");
        model.Invoking(m => m.GetOutputSchema(noFeatures.Schema)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");
        _ml.Invoking(ml => ml.Model.CreatePredictionEngine<PixelsRow, Scores>(model)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");
    }

    [Fact]
    public void ScoringAColumnOfAnotherTypeThanAtTrainingNamesIt()
    {
        var floatModel = Trained(Keyed(Rows()));
        var fixedRaw = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 8).Select(i => new FixedRow { Label = i % 2 == 0 ? "a" : "b", Features = Enumerable.Range(0, 12).Select(t => (i % 2 == 0 ? t : 12 - t) / 12f).ToArray() }));
        var fixedData = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(fixedRaw).Transform(fixedRaw);
        var fixedModel = Trained(fixedData);

        // Keys where floats were trained on.
        var tokens = _ml.Transforms.Text.TokenizeIntoCharactersAsKeys("Features", "Text")
            .Fit(_ml.Data.LoadFromEnumerable(new[] { new { Text = "abc" } }))
            .Transform(_ml.Data.LoadFromEnumerable(new[] { new { Text = "abc" } }));
        floatModel.Invoking(m => m.Transform(tokens)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*Single*");

        // Doubles where floats were trained on.
        var doubles = _ml.Data.LoadFromEnumerable(new[] { new { Features = new double[] { 1, 2 } } });
        floatModel.Invoking(m => m.Transform(doubles)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*");

        // Another known size than the 12 trained on; a variable size is accepted.
        var ten = _ml.Data.LoadFromEnumerable(new[] { new TenRow() });
        fixedModel.Invoking(m => m.Transform(ten)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*12*");
        fixedModel.Transform(_ml.Data.LoadFromEnumerable(Rows())).GetColumn<float[]>("Score").Should().HaveCount(16);

        // Floats where keys were trained on.
        var docs = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 8).Select(i => new { Label = i % 2 == 0 ? "a" : "b", Text = i % 2 == 0 ? "abab" : "cdcd" }));
        var tokenPipeline = _ml.Transforms.Conversion.MapValueToKey("Label").Append(_ml.Transforms.Text.TokenizeIntoCharactersAsKeys("Features", "Text"));
        var keyModel = Trained(tokenPipeline.Fit(docs).Transform(docs));
        keyModel.Invoking(m => m.Transform(Keyed(Rows()))).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Features*Key*");
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void NonFiniteValuesAreRejectedWhenScoring(float bad)
    {
        var model = Trained(Keyed(Rows()));
        var data = _ml.Data.LoadFromEnumerable(WithRow(new SequenceRow { Label = "up", Features = new[] { bad } }, at: 9));

        model.Invoking(m => m.Transform(data).GetColumn<float[]>("Score").ToArray())
            .Should().Throw<InvalidOperationException>().WithMessage("Row 9 of sequence column 'Features'*finite*");
        var engine = _ml.Model.CreatePredictionEngine<SequenceRow, Scores>(model);
        engine.Invoking(e => e.Predict(new SequenceRow { Features = new[] { 0f, bad } }))
            .Should().Throw<InvalidOperationException>().WithMessage("*sequence column 'Features'*index 1*");
    }

    [Fact]
    public void AnEmptyRowIsRejectedWhenScoring()
    {
        var model = Trained(Keyed(Rows()));
        var data = _ml.Data.LoadFromEnumerable(WithRow(new SequenceRow { Label = "up", Features = Array.Empty<float>() }, at: 11));

        model.Invoking(m => m.Transform(data).GetColumn<float[]>("Score").ToArray())
            .Should().Throw<InvalidOperationException>().WithMessage("Row 11 of sequence column 'Features' is empty*");
        var engine = _ml.Model.CreatePredictionEngine<SequenceRow, Scores>(model);
        engine.Invoking(e => e.Predict(new SequenceRow())).Should().Throw<InvalidOperationException>().WithMessage("*'Features' is empty*");
    }

    [Fact]
    public void ScoringDataNeedsNoLabel()
    {
        var model = Trained(Keyed(Rows()));
        var unlabeled = _ml.Data.LoadFromEnumerable(Rows().Select(r => new { r.Features }));
        model.Transform(unlabeled).GetColumn<float[]>("Score").Should().HaveCount(16);
    }

    private sealed class PixelsRow
    {
        public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    private sealed class TenRow
    {
        [VectorType(10)]
        public float[] Features { get; set; } = new float[10];
    }

    private sealed class Scores
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
