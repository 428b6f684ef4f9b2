using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary><see cref="AuxLstmClassifierOptions.EmbeddingColumnName"/>: the main LSTM's final hidden state as a column for downstream learners.</summary>
public class EmbeddingColumnTests
{
    private sealed class EmbeddingRow
    {
        public float[] Embedding { get; set; } = Array.Empty<float>();

        public float[] Score { get; set; } = Array.Empty<float>();
    }

    private static (MLContext Ml, IDataView Train, IDataView Test, TransformerChain<AuxLstmClassifierTransformer> Model) Fit()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Synthetic.Trends(160, 5, 40, seed: 1));
        var test = ml.Data.LoadFromEnumerable(Synthetic.Trends(80, 5, 40, seed: 2));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o =>
            {
                o.HiddenSize = 32; // sizes libtorch's oneDNN LSTM kernel scores right on this machine's CPU
                o.EmbeddingSize = 16;
                o.Epochs = 3;
                o.EmbeddingColumnName = "Embedding";
            })))
            .Fit(train);
        return (ml, train, test, model);
    }

    [Fact]
    public void ADownstreamTrainerLearnsFromTheEmbeddingColumn()
    {
        var (ml, train, test, model) = Fit();

        var schema = model.Transform(test).Schema;
        schema["Embedding"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 32));
        model.GetOutputSchema(test.Schema)["Embedding"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 32));

        // A second ML.NET trainer, fitted on the embeddings alone (its own PredictedLabel and Score replace ours).
        var downstream = ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Embedding", maximumNumberOfIterations: 50);
        var stacked = model.Append(downstream.Fit(model.Transform(train)));
        var metrics = ml.MulticlassClassification.Evaluate(stacked.Transform(test));
        metrics.MacroAccuracy.Should().BeGreaterThan(0.9, "the final hidden state encodes the trend the LSTM was trained to see");

        // Embeddings of unrelated inputs differ, and they are tanh-bounded hidden states, not probabilities.
        var rows = ml.Data.CreateEnumerable<EmbeddingRow>(model.Transform(test), reuseRowObject: false).ToArray();
        rows.Should().OnlyContain(r => r.Embedding.Length == 32 && r.Embedding.All(v => v > -1 && v < 1));
        rows.Select(r => string.Join(",", r.Embedding.Take(4))).Distinct().Should().HaveCountGreaterThan(70);
    }

    [Fact]
    public void EmbeddingsAgreeBetweenBatchedScoringThePredictionEngineAndTheSavedModel()
    {
        var (ml, _, test, model) = Fit();
        var batched = ml.Data.CreateEnumerable<EmbeddingRow>(model.Transform(test), reuseRowObject: false).ToArray();

        string path = Path.Combine(Path.GetTempPath(), $"auxlstm-embedding-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, test.Schema, path);
            var loaded = new MLContext(seed: 5).Model.Load(path, out _);
            var reloaded = ml.Data.CreateEnumerable<EmbeddingRow>(loaded.Transform(test), reuseRowObject: false).ToArray();
            var engine = ml.Model.CreatePredictionEngine<SequenceRow, EmbeddingRow>(loaded);
            var inputs = ml.Data.CreateEnumerable<SequenceRow>(test, reuseRowObject: false).ToArray();

            reloaded.Should().HaveCount(batched.Length);
            for (int i = 0; i < batched.Length; i++)
            {
                reloaded[i].Embedding.Should().Equal(batched[i].Embedding, $"row {i} after the zip round trip");
                engine.Predict(inputs[i]).Embedding.Should().Equal(batched[i].Embedding, (a, b) => Math.Abs(a - b) < 1e-5f, $"row {i} scored alone");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WithoutTheOptionThereIsNoEmbeddingColumn()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(32, 3, 8));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => o.HiddenSize = 32)))
            .Fit(data);

        model.Transform(data).Schema.Select(c => c.Name).Distinct().Should().BeEquivalentTo("Label", "Features", "PredictedLabel", "Score");
    }
}
