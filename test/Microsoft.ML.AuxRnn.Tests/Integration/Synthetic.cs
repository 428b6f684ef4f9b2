using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>A row of a synthetic sequence data set: a text label and a float sequence of any length.</summary>
public sealed class SequenceRow
{
    public string Label { get; set; } = "";

    public float[] Features { get; set; } = Array.Empty<float>();
}

/// <summary>A row whose sequence has a fixed size (a known-size vector column).</summary>
public sealed class FixedRow
{
    public string Label { get; set; } = "";

    [VectorType(12)]
    public float[] Features { get; set; } = Array.Empty<float>();
}

/// <summary>Small synthetic sequence tasks for plumbing tests (the real-data tests use MNIST and DBpedia).</summary>
internal static class Synthetic
{
    /// <summary>
    /// Class "up" sequences rise, class "down" ones fall (plus noise), of lengths <paramref name="minLength"/>..<paramref name="maxLength"/>:
    /// learnable in one or two epochs by a tiny LSTM.
    /// </summary>
    public static List<SequenceRow> Trends(int rows, int minLength, int maxLength, int seed = 1)
    {
        var rng = new Random(seed);
        var list = new List<SequenceRow>();
        for (int i = 0; i < rows; i++)
        {
            bool up = i % 2 == 0;
            int length = rng.Next(minLength, maxLength + 1);
            var values = new float[length];
            for (int t = 0; t < length; t++)
                values[t] = (up ? t : length - t) / (float)length + 0.1f * (float)(rng.NextDouble() - 0.5);
            list.Add(new SequenceRow { Label = up ? "up" : "down", Features = values });
        }
        return list;
    }

    public static AuxLstmClassifierOptions TinyOptions(Action<AuxLstmClassifierOptions>? configure = null)
    {
        var options = new AuxLstmClassifierOptions
        {
            HiddenSize = 8,
            EmbeddingSize = 8,
            ClassifierHiddenSize = 16,
            Epochs = 1,
            BatchSize = 16,
            LearningRate = 3e-3,
            AuxiliaryLoss = AuxiliaryLoss.None,
            SegmentLength = 4,
            TruncationLength = null,
            Seed = 7,
            Device = ComputeDevice.Cpu,
            ScoringBatchSize = 16,
        };
        configure?.Invoke(options);
        return options;
    }
}
