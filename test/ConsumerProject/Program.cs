// A user's program: trains, evaluates and scores with Microsoft.ML.AuxRnn through ML.NET's public API only.
//   Consumer demo                                  fits a tiny classifier on synthetic sequences, prints its accuracy
//   Consumer score <model.zip> <data.idv> <out>    loads a saved model in this fresh process and writes its scores
//   Consumer checkpoint <folder> <epochs>          trains with a checkpoint folder, printing a line per epoch (the
//                                                  tests kill it mid-training and run it again to resume); <folder>
//                                                  "none" trains without checkpoints
//   Consumer native                                prints how TorchSharp's native library was prepared, then
//                                                  computes with it (the native-cache tests run it in a chosen
//                                                  environment)
//   Consumer hugepages                             fits a tiny classifier, then prints whether THP_MEM_ALLOC_ENABLE
//                                                  is in the process's environment and how much of a 64 MiB tensor
//                                                  the kernel backed with huge pages (AnonHugePages growth, KiB)
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.Data;

return args.FirstOrDefault() switch
{
    "demo" => Demo(),
    "score" when args.Length >= 4 => Score(args[1], args[2], args[3], args.Length > 4 ? args[4] : "Score"),
    "checkpoint" when args.Length >= 3 => Checkpoint(args[1], int.Parse(args[2])),
    "native" => Native(),
    "hugepages" => HugePages(),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Consumer demo | Consumer score <model.zip> <data.idv> <scores.bin> [scoreColumn] | Consumer checkpoint <folder|none> <epochs> | Consumer native | Consumer hugepages");
    return 2;
}

static int Native()
{
    Console.WriteLine($"status={Microsoft.ML.AuxRnn.Runtime.TorchNativeLoader.Status}");
    using var sum = TorchSharp.torch.ones(3).sum();
    Console.WriteLine($"sum={sum.item<float>().ToString(System.Globalization.CultureInfo.InvariantCulture)}");
    return 0;
}

static int HugePages()
{
    var rows = Enumerable.Range(0, 32).Select(i => new Row { Label = i % 2 == 0 ? "up" : "down", Features = new[] { i % 2, 0.5f, 1f - i % 2 } }).ToList();
    var ml = new MLContext(seed: 1);
    var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
    using (var model = ml.Transforms.AuxLstmClassifier(new AuxLstmClassifierOptions { HiddenSize = 8, EmbeddingSize = 8, ClassifierHiddenSize = 8, Epochs = 1, BatchSize = 16, Device = ComputeDevice.Cpu }).Fit(data))
    {
    }
    Console.WriteLine($"env={Marshal.PtrToStringAnsi(GetEnv("THP_MEM_ALLOC_ENABLE")) ?? "(unset)"}");
    long before = AnonHugePagesKb();
    using var big = TorchSharp.torch.ones(16L << 20); // 64 MiB, written, so every page is faulted in
    Console.WriteLine($"hugeKb={AnonHugePagesKb() - before}");
    return 0;

    static long AnonHugePagesKb() => long.Parse(File.ReadLines("/proc/self/smaps_rollup").First(l => l.StartsWith("AnonHugePages:", StringComparison.Ordinal))
        .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
}

[DllImport("libc", EntryPoint = "getenv")]
static extern IntPtr GetEnv(string name);

static int Demo()
{
    // Class "up": a rising sequence; class "down": a falling one; lengths vary, so rows are padded and masked.
    var rng = new Random(3);
    var rows = Enumerable.Range(0, 160).Select(i =>
    {
        bool up = i % 2 == 0;
        int length = rng.Next(5, 30);
        var values = Enumerable.Range(0, length).Select(t => (up ? t : length - t) / (float)length + 0.1f * (float)(rng.NextDouble() - 0.5)).ToArray();
        return new Row { Label = up ? "up" : "down", Features = values };
    }).ToList();

    var ml = new MLContext(seed: 1);
    var split = ml.Data.TrainTestSplit(ml.Data.LoadFromEnumerable(rows), testFraction: 0.25, seed: 1);
    var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.Transforms.AuxLstmClassifier(new AuxLstmClassifierOptions
        {
            HiddenSize = 16, EmbeddingSize = 8, ClassifierHiddenSize = 16, Epochs = 6, BatchSize = 16, LearningRate = 1e-2,
            AuxiliaryLoss = AuxiliaryLoss.Reconstruct, SegmentLength = 4, TruncationLength = null, Seed = 1, Device = ComputeDevice.Cpu,
        }))
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedTrend", "PredictedLabel"));
    var model = pipeline.Fit(split.TrainSet);
    var metrics = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
    Console.WriteLine($"accuracy={metrics.MicroAccuracy.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}");
    return 0;
}

static int Checkpoint(string folder, int epochs)
{
    var rng = new Random(5);
    var rows = Enumerable.Range(0, 128).Select(i =>
    {
        bool up = i % 2 == 0;
        int length = rng.Next(20, 40);
        var values = Enumerable.Range(0, length).Select(t => (up ? t : length - t) / (float)length + 0.2f * (float)(rng.NextDouble() - 0.5)).ToArray();
        return new Row { Label = up ? "up" : "down", Features = values };
    }).ToList();

    var ml = new MLContext(seed: 1);
    // One line per finished epoch and one when a run resumes, flushed at once: the parent reads them to know when to kill.
    var epochLine = new Regex(@"Epoch (\d+)/(\d+) \(");
    var resumeLine = new Regex(@"Resuming from .* after epoch (\d+) of");
    ml.Log += (_, e) =>
    {
        if (epochLine.Match(e.Message) is { Success: true } epoch)
            Console.WriteLine($"epoch {epoch.Groups[1].Value} done");
        else if (resumeLine.Match(e.Message) is { Success: true } resume)
            Console.WriteLine($"resumed after epoch {resume.Groups[1].Value}");
    };

    var data = ml.Data.LoadFromEnumerable(rows);
    var options = new AuxLstmClassifierOptions
    {
        HiddenSize = 32, EmbeddingSize = 8, ClassifierHiddenSize = 16, Epochs = epochs, BatchSize = 16, LearningRate = 3e-3,
        AuxiliaryLoss = AuxiliaryLoss.Reconstruct, SegmentLength = 8, TruncationLength = null, Seed = 3, Device = ComputeDevice.Cpu,
        CheckpointFolder = folder == "none" ? null : folder,
    };
    if (Environment.GetEnvironmentVariable("AUXRNN_TORCH_THREADS") is { Length: > 0 } threads)
        options.NumberOfThreads = int.Parse(threads);
    var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(options)).Fit(data);

    // A fingerprint of the trained weights: the scores of every row, bit for bit.
    var scores = model.Transform(data).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();
    var bytes = new byte[scores.Length * sizeof(float)];
    Buffer.BlockCopy(scores, 0, bytes, 0, bytes.Length);
    Console.WriteLine($"finished history={model.LastTransformer.TrainingHistory.Count} scores={Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))}");
    return 0;
}

static int Score(string modelPath, string dataPath, string outputPath, string scoreColumn)
{
    var ml = new MLContext(seed: 1);
    var model = ml.Model.Load(modelPath, out _); // no registration call: ML.NET finds the loader from the zip
    if (Environment.GetEnvironmentVariable("AUXRNN_TORCH_THREADS") is { Length: > 0 } threads)
        TorchSharp.torch.set_num_threads(int.Parse(threads)); // after the library is loaded, so its native setup ran first
    var scored = model.Transform(ml.Data.LoadFromBinary(dataPath));
    var scores = scored.GetColumn<float[]>(scoreColumn).ToArray();
    using var writer = new BinaryWriter(File.Create(outputPath));
    writer.Write(scores.Length);
    foreach (var row in scores)
    {
        writer.Write(row.Length);
        foreach (float value in row)
            writer.Write(value);
    }
    Console.WriteLine($"scored {scores.Length} rows");
    return 0;
}

internal sealed class Row
{
    public string Label { get; set; } = "";

    public float[] Features { get; set; } = Array.Empty<float>();
}
