// Pixel-by-pixel MNIST: each 28×28 digit is a sequence of 784 pixels, classified by r-LSTM with the label's gradient
// truncated to the last 300 pixels (the paper's setting). Fit → evaluate → save → load → predict.
//   dotnet run --project samples/PixelMnist -c Release -- [MNIST idx folder] [--rows N] [--epochs N] [--tiny]
using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;

namespace Samples;

public static class PixelMnist
{
    public static int Main(string[] args)
    {
        string folder = args.FirstOrDefault(a => !a.StartsWith("--")) ?? DefaultFolder("mnist");
        bool tiny = args.Contains("--tiny");
        int rows = Option(args, "--rows") ?? (tiny ? 64 : 60_000);
        var ml = new MLContext(seed: 1);

        // Label: a key over "0".."9"; Features: 784 pixel intensities 0..255, read row by row.
        var train = AuxRnnDatasets.LoadMnist(ml, Path.Combine(folder, "train-images-idx3-ubyte.gz"),
            Path.Combine(folder, "train-labels-idx1-ubyte.gz"), maxRows: rows);
        var test = AuxRnnDatasets.LoadMnist(ml, Path.Combine(folder, "t10k-images-idx3-ubyte.gz"),
            Path.Combine(folder, "t10k-labels-idx1-ubyte.gz"), maxRows: Math.Min(rows, 10_000));

        var options = new AuxLstmClassifierOptions
        {
            AuxiliaryLoss = AuxiliaryLoss.Reconstruct, // r-LSTM: reconstruct past pixels from the LSTM's memory
            TruncationLength = 300,                    // the label's gradient reaches the last 300 pixels only
            InputLevels = 256,                         // each pixel intensity is a token, embedded as in the paper
            HiddenSize = tiny ? 8 : 128,
            EmbeddingSize = tiny ? 8 : 128,
            ClassifierHiddenSize = tiny ? 16 : 256,
            Epochs = Option(args, "--epochs") ?? (tiny ? 1 : 10),
            BatchSize = tiny ? 32 : 128,
        };
        var pipeline = ml.Transforms.AuxLstmClassifier(options)
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedDigit", "PredictedLabel"));

        var model = pipeline.Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Console.WriteLine($"Accuracy: {metrics.MicroAccuracy:P2} on {test.GetRowCount():N0} test digits");

        ml.Model.Save(model, train.Schema, "pixel-mnist.zip");
        var loaded = ml.Model.Load("pixel-mnist.zip", out _);

        // Score one digit with a prediction engine on the loaded model.
        var engine = ml.Model.CreatePredictionEngine<Digit, Prediction>(loaded);
        var digit = ml.Data.CreateEnumerable<Digit>(test, reuseRowObject: false).First();
        var prediction = engine.Predict(digit);
        Console.WriteLine($"The first test digit is a {prediction.PredictedDigit} (p = {prediction.Score.Max():P1})");
        return 0;
    }

    /// <summary>$AUXRNN_DATA/<paramref name="set"/> (the full data sets) when set, else the repository's small test fixtures.</summary>
    private static string DefaultFolder(string set) =>
        Environment.GetEnvironmentVariable("AUXRNN_DATA") is { Length: > 0 } data ? Path.Combine(data, set) : Path.Combine("test", "Fixtures", set);

    private static int? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : null;
    }

    public sealed class Digit
    {
        [VectorType(784)]
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    public sealed class Prediction
    {
        public string PredictedDigit { get; set; } = "";

        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
