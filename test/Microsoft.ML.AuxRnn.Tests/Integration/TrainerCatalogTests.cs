using Microsoft.ML.Data;
using Microsoft.ML.AuxRnn.Tests.Datasets;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>mlContext.MulticlassClassification.Trainers.AuxLstm, and CrossValidate with it.</summary>
public class TrainerCatalogTests
{
    [Fact]
    public void TrainersAuxLstmGivesTheSameEstimatorAsTransformsAuxLstmClassifier()
    {
        var ml = new MLContext(seed: 1);
        var validation = ml.Data.LoadFromEnumerable(Synthetic.Trends(4, 3, 5));
        var simple = ml.MulticlassClassification.Trainers.AuxLstm("Target", "Pixels", AuxiliaryLoss.Predict, truncationLength: null,
            epochs: 3, batchSize: 16, validationSet: validation);
        simple.Should().BeOfType<AuxLstmClassifierEstimator>();
        var o = simple.Options;
        (o.LabelColumnName, o.SequenceColumnName, o.AuxiliaryLoss, o.TruncationLength, o.Epochs, o.BatchSize).Should()
            .Be(("Target", "Pixels", AuxiliaryLoss.Predict, (int?)null, 3, 16));
        o.ValidationSet.Should().BeSameAs(validation);

        var defaults = ml.MulticlassClassification.Trainers.AuxLstm().Options;
        var reference = ml.Transforms.AuxLstmClassifier().Options;
        defaults.Should().BeEquivalentTo(reference, "the simple overload's defaults are the options' defaults");

        var options = Synthetic.TinyOptions(x => x.HiddenSize = 32);
        ml.MulticlassClassification.Trainers.AuxLstm(options).Options.Should().BeEquivalentTo(options);

        var bad = () => ml.MulticlassClassification.Trainers.AuxLstm(epochs: 0);
        bad.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Epochs*");
    }

    [Fact]
    public void CrossValidateTrainsAndScoresEveryFoldAndEachFoldKeepsItsOwnCheckpoint()
    {
        static IDataView Keyed(MLContext ml)
        {
            var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(50, 3, 12));
            return ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        }

        var plainMl = new MLContext(seed: 5);
        var plain = plainMl.MulticlassClassification.CrossValidate(Keyed(plainMl),
            plainMl.MulticlassClassification.Trainers.AuxLstm(Synthetic.TinyOptions(o => o.HiddenSize = 32)), numberOfFolds: 5);

        plain.Should().HaveCount(5);
        plain.Sum(f => f.Metrics.ConfusionMatrix.Counts.Sum(r => r.Sum())).Should().Be(50, "every row is scored once, in its own fold");
        plain.Should().OnlyContain(f => f.Model is AuxLstmClassifierTransformer && f.Metrics.MicroAccuracy >= 0 && f.Metrics.MicroAccuracy <= 1);

        using var temp = new ViewReader.TempFolder();
        var log = new List<string>();
        for (int run = 0; run < 2; run++)
        {
            var ml = new MLContext(seed: 5);
            ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
            var estimator = ml.MulticlassClassification.Trainers.AuxLstm(Synthetic.TinyOptions(o => { o.HiddenSize = 32; o.CheckpointFolder = temp.Path; }));
            var folds = ml.MulticlassClassification.CrossValidate(Keyed(ml), estimator, numberOfFolds: 5);

            // Five folds, five checkpoints: none resumes another fold's run, so each gives the model it gives alone.
            Directory.GetDirectories(temp.Path).Should().HaveCount(5).And.OnlyContain(d => File.Exists(Path.Combine(d, "checkpoint.bin")));
            folds.Select(f => f.Metrics.LogLoss).Should().Equal(plain.Select(f => f.Metrics.LogLoss), $"run {run + 1} with checkpoints trains what the run without does");
            foreach (var fold in folds)
                (fold.Model as IDisposable)?.Dispose(); // native memory now, not at some later test's garbage collection
        }
        foreach (var fold in plain)
            (fold.Model as IDisposable)?.Dispose();
        // The second cross-validation finds each fold's finished checkpoint and resumes it rather than training again.
        log.Count(m => m.Contains("Resuming from", StringComparison.Ordinal)).Should().Be(5);
    }
}
