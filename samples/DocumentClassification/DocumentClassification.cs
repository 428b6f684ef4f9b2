// Character-level document classification (DBpedia, AG News, Yelp… in Zhang et al.'s csv format): each document is a
// sequence of characters, classified by r-LSTM with truncated backpropagation. Fit → evaluate → save → load → predict.
//   dotnet run --project samples/DocumentClassification -c Release -- [folder with train.csv, test.csv, classes.txt] [--rows N] [--epochs N] [--tiny]
using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Datasets;

namespace Samples;

public static class DocumentClassification
{
    public static int Main(string[] args)
    {
        string folder = args.FirstOrDefault(a => !a.StartsWith("--")) ?? DefaultFolder("dbpedia");
        bool tiny = args.Contains("--tiny");
        int rows = Option(args, "--rows") ?? (tiny ? 48 : 5_000);
        var ml = new MLContext(seed: 1);

        // Label: a key whose values are the class names of classes.txt; Title and Text: the document.
        var train = AuxRnnDatasets.LoadZhangCsv(ml, Path.Combine(folder, "train.csv"), maxRows: rows);
        var test = AuxRnnDatasets.LoadZhangCsv(ml, Path.Combine(folder, "test.csv"), maxRows: Math.Min(rows, 5_000));

        var options = new AuxLstmClassifierOptions
        {
            AuxiliaryLoss = AuxiliaryLoss.Reconstruct, // r-LSTM
            TruncationLength = 300,                    // the label's gradient reaches the last 300 characters only
            HiddenSize = tiny ? 8 : 128,
            EmbeddingSize = tiny ? 8 : 128,
            ClassifierHiddenSize = tiny ? 16 : 256,
            SegmentLength = tiny ? 16 : 200,
            Epochs = Option(args, "--epochs") ?? (tiny ? 1 : 5),
            BatchSize = tiny ? 24 : 64,
        };
        // Text → lower-cased characters over a 70-symbol alphabet (a vector of keys) → classifier → class name.
        var pipeline = AuxRnnDatasets.CharacterFeaturizer(ml, outputColumnName: "Features", inputColumnName: "Text")
            .Append(ml.Transforms.AuxLstmClassifier(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));

        var model = pipeline.Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Console.WriteLine($"Accuracy: {metrics.MicroAccuracy:P2} on {metrics.ConfusionMatrix.Counts.Sum(r => r.Sum()):N0} test documents");

        // The saved model holds the character featurizer too, so it scores raw text.
        ml.Model.Save(model, train.Schema, "documents.zip");
        var loaded = ml.Model.Load("documents.zip", out _);
        var engine = ml.Model.CreatePredictionEngine<Document, Prediction>(loaded);
        var prediction = engine.Predict(new Document { Text = "The Mersey Ferry is a ferry service across the River Mersey in England." });
        Console.WriteLine($"\"The Mersey Ferry…\" is a {prediction.PredictedClass} (p = {prediction.Score.Max():P1})");
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

    public sealed class Document
    {
        public string Text { get; set; } = "";
    }

    public sealed class Prediction
    {
        public string PredictedClass { get; set; } = "";

        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
