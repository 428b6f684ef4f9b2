using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>Tiny shapes, data sets and hosts shared by the training tests.</summary>
internal static class TrainingFixtures
{
    public static NetworkShape Shape(AuxiliaryLoss loss, int vocabulary = 6, int classes = 3, int hidden = 8, int embedding = 4, int head = 8, bool discrete = true, int stepSize = 1) =>
        new(discrete, discrete ? vocabulary : 0, discrete ? 1 : stepSize, embedding, hidden, head, classes, loss, 0.5);

    public static IHost Host(MLContext? ml = null) => ((IHostEnvironment)(ml ?? new MLContext(seed: 1))).Register("test");

    /// <summary>
    /// Token rows whose label is their first token (1..classes): learnable only by remembering step 0.
    /// Other steps are noise tokens. Lengths vary between <paramref name="minLength"/> and <paramref name="maxLength"/>.
    /// </summary>
    public static SequenceDataset FirstTokenTask(int rows, int minLength, int maxLength, int classes, int vocabulary, int seed)
    {
        var rng = new Random(seed);
        var data = SequenceDataset.Discrete(vocabulary);
        for (int i = 0; i < rows; i++)
        {
            int label = rng.Next(classes);
            var tokens = new int[rng.Next(minLength, maxLength + 1)];
            tokens[0] = label + 1;
            for (int t = 1; t < tokens.Length; t++)
                tokens[t] = rng.Next(classes + 1, vocabulary);
            data.AddTokens(tokens, label);
        }
        return data;
    }

    /// <summary>Continuous rows of <paramref name="stepSize"/> values per step: noisy sines whose frequency is the label.</summary>
    public static SequenceDataset Sines(int rows, int length, int stepSize, int classes, int seed)
    {
        var rng = new Random(seed);
        var data = SequenceDataset.Continuous(stepSize);
        for (int i = 0; i < rows; i++)
        {
            int label = rng.Next(classes);
            var values = new float[length * stepSize];
            double phase = rng.NextDouble() * Math.PI * 2;
            for (int t = 0; t < length; t++)
            {
                for (int d = 0; d < stepSize; d++)
                    values[t * stepSize + d] = (float)(Math.Sin(phase + t * 0.3 * (label + 1) + d) + 0.1 * (rng.NextDouble() - 0.5));
            }
            data.AddValues(values, label);
        }
        return data;
    }

    /// <summary>Every parameter's values, copied to managed arrays.</summary>
    public static float[][] Snapshot(nn.Module module) =>
        module.parameters().Select(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    public static bool SameWeights(float[][] a, float[][] b) =>
        a.Length == b.Length && a.Zip(b).All(pair => pair.First.AsSpan().SequenceEqual(pair.Second));
}
