// Long sequences from real photos: each picture, resized to N×N grey pixels, is read pixel by pixel (64×64 → 4,096
// steps; 128×128 → 16,384). r-LSTM with truncated backpropagation keeps memory flat as N grows.
// Fit → evaluate → save → load → predict.
//   dotnet run --project samples/LongImageSequences -c Release -- [folder with train/ and test/ class folders] [--size N] [--rows N] [--epochs N] [--tiny]
using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Datasets;

namespace Samples;

public static class LongImageSequences
{
    public static int Main(string[] args)
    {
        string folder = args.FirstOrDefault(a => !a.StartsWith("--")) ?? DefaultFolder("clothing128");
        bool tiny = args.Contains("--tiny");
        int size = Option(args, "--size") ?? (tiny ? 8 : 64);
        int? perClass = Option(args, "--rows") ?? (tiny ? 4 : null); // images per class
        var ml = new MLContext(seed: 1);

        // Label (a key over the sub-folder names) and ImagePath; the pixels are read inside the pipeline.
        var train = AuxRnnDatasets.ListImageFolder(ml, Path.Combine(folder, "train"), maxImagesPerClass: perClass);
        var test = AuxRnnDatasets.ListImageFolder(ml, Path.Combine(folder, "test"), maxImagesPerClass: perClass);

        var options = new AuxLstmClassifierOptions
        {
            AuxiliaryLoss = AuxiliaryLoss.Reconstruct, // r-LSTM
            TruncationLength = 300,                    // constant memory, whatever the sequence length
            InputLevels = 256,                         // grey levels as tokens
            HiddenSize = tiny ? 8 : 128,
            EmbeddingSize = tiny ? 8 : 128,
            ClassifierHiddenSize = tiny ? 16 : 256,
            SegmentLength = tiny ? 16 : 600,
            Epochs = Option(args, "--epochs") ?? (tiny ? 1 : 5),
            BatchSize = tiny ? 20 : 32,
        };
        // Image file → resized grey picture → size×size steps of one pixel → classifier → class name.
        var pipeline = AuxRnnDatasets.ImageFeaturizer(ml, size, size, PixelChannels.Grey)
            .Append(ml.Transforms.AuxLstmClassifier(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));

        var model = pipeline.Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Console.WriteLine($"Accuracy: {metrics.MicroAccuracy:P2} on {metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()):N0} test photos ({size * size:N0} steps each)");

        // The saved model starts from an image path, so it scores files directly.
        ml.Model.Save(model, train.Schema, "long-images.zip");
        var loaded = ml.Model.Load("long-images.zip", out _);
        var engine = ml.Model.CreatePredictionEngine<Photo, Prediction>(loaded);
        string file = Directory.GetFiles(Path.Combine(folder, "test"), "*.jpg", SearchOption.AllDirectories).Order().First();
        var prediction = engine.Predict(new Photo { ImagePath = Path.GetFullPath(file) });
        Console.WriteLine($"{Path.GetFileName(file)} looks like a {prediction.PredictedClass} (p = {prediction.Score.Max():P1})");
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

    public sealed class Photo
    {
        public string ImagePath { get; set; } = "";
    }

    public sealed class Prediction
    {
        public string PredictedClass { get; set; } = "";

        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
