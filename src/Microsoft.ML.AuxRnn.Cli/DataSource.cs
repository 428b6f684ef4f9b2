using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Cli;

/// <summary>The data formats the command reads.</summary>
internal enum DataFormat
{
    /// <summary>LeCun's idx files (MNIST, Fashion-MNIST), gzipped or not.</summary>
    Mnist,

    /// <summary>CIFAR-10 binary batches.</summary>
    Cifar10,

    /// <summary>Zhang et al. csv (class, title, text), character level.</summary>
    Csv,

    /// <summary>A folder with one sub-folder of images per class.</summary>
    Images,
}

/// <summary>Which part of a data folder to read.</summary>
internal enum DataRole
{
    Train,
    Test,
}

/// <summary>
/// What the command needs to read data the way a model was trained, saved beside the ML.NET model in the same zip
/// (entry <see cref="EntryName"/>; ML.NET ignores it): the format, the image size and colours, the permutation seed,
/// and whether the featurizer is inside the ML.NET model (text and image folders) or must be put in front of it
/// (MNIST and CIFAR-10 models scoring image files).
/// </summary>
internal sealed class ModelManifest
{
    public const string EntryName = "AuxRnnCli/manifest.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
    };

    public DataFormat Format { get; set; }

    public int ImageWidth { get; set; }

    public int ImageHeight { get; set; }

    public PixelChannels Channels { get; set; } = PixelChannels.Grey;

    public int? PermutationSeed { get; set; }

    public bool FeaturizerInModel { get; set; }

    public string[] Classes { get; set; } = Array.Empty<string>();

    public string? TrainedOn { get; set; }

    public Dictionary<string, object?> Options { get; set; } = new();

    public void WriteInto(string modelZip)
    {
        using var zip = ZipFile.Open(modelZip, ZipArchiveMode.Update);
        zip.GetEntry(EntryName)?.Delete();
        using var stream = zip.CreateEntry(EntryName).Open();
        JsonSerializer.Serialize(stream, this, Json);
    }

    public static ModelManifest ReadFrom(string modelZip)
    {
        if (!File.Exists(modelZip))
            throw new UsageException($"The model file '{modelZip}' does not exist.");
        try
        {
            using var zip = ZipFile.OpenRead(modelZip);
            var entry = zip.GetEntry(EntryName)
                ?? throw new UsageException($"'{modelZip}' was not written by 'auxrnn train' (it has no {EntryName}); load it with mlContext.Model.Load in code instead.");
            using var stream = entry.Open();
            return JsonSerializer.Deserialize<ModelManifest>(stream, Json)
                ?? throw new UsageException($"'{modelZip}' has an empty {EntryName}.");
        }
        catch (InvalidDataException e)
        {
            throw new UsageException($"'{modelZip}' is not a model zip: {e.Message}");
        }
        catch (JsonException e)
        {
            throw new UsageException($"'{modelZip}' has a damaged {EntryName}: {e.Message}");
        }
    }
}

/// <summary>Finds and loads data in the formats of <see cref="DataFormat"/>, for training, evaluation and prediction.</summary>
internal static class DataSource
{
    /// <summary>Guesses the format from the path: idx files → mnist, .bin → cifar10, .csv → csv, a folder of folders → images.</summary>
    public static DataFormat Detect(string path)
    {
        if (File.Exists(path))
        {
            string name = Path.GetFileName(path).ToLowerInvariant();
            if (name.Contains("idx") || name.EndsWith(".gz", StringComparison.Ordinal))
                return DataFormat.Mnist;
            if (name.EndsWith(".bin", StringComparison.Ordinal))
                return DataFormat.Cifar10;
            if (name.EndsWith(".csv", StringComparison.Ordinal))
                return DataFormat.Csv;
            throw new UsageException($"Cannot tell the format of '{path}': pass --format mnist|cifar10|csv|images.");
        }
        if (!Directory.Exists(path))
            throw new UsageException($"The data path '{path}' does not exist. (With no --data, 'auxrnn' runs its built-in demonstration; 'auxrnn download mnist' fetches MNIST.)");
        var files = Directory.GetFiles(path).Select(f => Path.GetFileName(f).ToLowerInvariant()).ToArray();
        if (files.Any(f => f.Contains("idx3-ubyte")))
            return DataFormat.Mnist;
        if (files.Any(f => f.EndsWith(".bin", StringComparison.Ordinal) && (f.StartsWith("data_batch", StringComparison.Ordinal) || f.StartsWith("test_batch", StringComparison.Ordinal))))
            return DataFormat.Cifar10;
        if (files.Any(f => f.EndsWith(".csv", StringComparison.Ordinal)))
            return DataFormat.Csv;
        return DataFormat.Images;
    }

    public static DataFormat ParseFormat(string text) => text.ToLowerInvariant() switch
    {
        "mnist" or "idx" => DataFormat.Mnist,
        "cifar10" or "cifar-10" or "cifar" => DataFormat.Cifar10,
        "csv" or "text" or "zhang" => DataFormat.Csv,
        "images" or "image" or "folder" => DataFormat.Images,
        _ => throw new UsageException($"--format takes mnist, cifar10, csv or images, not '{text}'."),
    };

    /// <summary>
    /// The model-ready data for <paramref name="role"/>: for MNIST and CIFAR-10, Label + Features; for csv, Label +
    /// Text; for images, Label + ImagePath (the featurizer runs inside the model). Null when a folder has no part for
    /// the role (e.g. no test split).
    /// </summary>
    public static IDataView? Load(MLContext ml, string path, ModelManifest manifest, DataRole role, int? maxRows, bool required, bool explicitPath = false)
    {
        switch (manifest.Format)
        {
            case DataFormat.Mnist:
            {
                var pair = MnistPair(path, role, required);
                return pair == null ? null : AuxRnnDatasets.LoadMnist(ml, pair.Value.Images, pair.Value.Labels, manifest.PermutationSeed, maxRows);
            }
            case DataFormat.Cifar10:
            {
                string[]? files = Directory.Exists(path)
                    ? (role == DataRole.Train
                        ? Directory.GetFiles(path, "data_batch_*.bin").Order(StringComparer.Ordinal).ToArray()
                        : Directory.GetFiles(path, "test_batch.bin"))
                    : new[] { path };
                if (files.Length == 0)
                    return required ? throw new UsageException($"'{path}' has no CIFAR-10 {(role == DataRole.Train ? "training batches (data_batch_*.bin)" : "test batch (test_batch.bin)")}.") : null;
                return AuxRnnDatasets.LoadCifar10(ml, files, manifest.PermutationSeed, maxRows);
            }
            case DataFormat.Csv:
            {
                string file = path;
                if (Directory.Exists(path))
                {
                    file = Path.Combine(path, role == DataRole.Train ? "train.csv" : "test.csv");
                    if (!File.Exists(file))
                        return required ? throw new UsageException($"'{path}' has no {Path.GetFileName(file)}.") : null;
                }
                return AuxRnnDatasets.LoadZhangCsv(ml, file, manifest.Classes.Length > 0 ? manifest.Classes : null, maxRows);
            }
            case DataFormat.Images:
            {
                string? folder = ImageSplit(path, role, explicitPath);
                if (folder == null)
                    return required ? throw new UsageException($"'{path}' has no {role.ToString().ToLowerInvariant()} images.") : null;
                return AuxRnnDatasets.ListImageFolder(ml, folder, manifest.Classes.Length > 0 ? manifest.Classes : null, maxRows);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(manifest));
        }
    }

    /// <summary>The featurizer saved inside the model (csv, images), or null (MNIST and CIFAR-10 data are pixel vectors already).</summary>
    public static IEstimator<ITransformer>? ModelFeaturizer(MLContext ml, ModelManifest manifest) => manifest.Format switch
    {
        DataFormat.Csv => AuxRnnDatasets.CharacterFeaturizer(ml),
        DataFormat.Images => AuxRnnDatasets.ImageFeaturizer(ml, manifest.ImageWidth, manifest.ImageHeight, manifest.Channels, manifest.PermutationSeed),
        _ => null,
    };

    /// <summary>
    /// Rows to score for <c>predict</c>: image files (MNIST, CIFAR-10 and image models; the pixel featurizer is put in
    /// front of MNIST and CIFAR-10 models here) or text files (csv models; a file's whole content is one document).
    /// </summary>
    public static IDataView PredictionInput(MLContext ml, ModelManifest manifest, IReadOnlyList<string> files)
    {
        foreach (string file in files)
        {
            if (!File.Exists(file))
                throw new UsageException($"The file '{file}' does not exist.");
        }

        if (manifest.Format == DataFormat.Csv)
            return ml.Data.LoadFromEnumerable(files.Select(f => new TextRow { Text = File.ReadAllText(f) }).ToList());

        var paths = ml.Data.LoadFromEnumerable(files.Select(f => new PathRow { ImagePath = Path.GetFullPath(f) }).ToList());
        if (manifest.FeaturizerInModel)
            return paths;
        return AuxRnnDatasets.ImageFeaturizer(ml, manifest.ImageWidth, manifest.ImageHeight, manifest.Channels, manifest.PermutationSeed)
            .Fit(paths).Transform(paths);
    }

    private static (string Images, string Labels)? MnistPair(string path, DataRole role, bool required)
    {
        if (File.Exists(path))
        {
            string labels = Path.Combine(Path.GetDirectoryName(path) ?? ".", Path.GetFileName(path).Replace("images-idx3", "labels-idx1", StringComparison.Ordinal));
            if (labels == path || !File.Exists(labels))
                throw new UsageException($"No labels file beside '{path}' (expected '{labels}').");
            return (path, labels);
        }

        string prefix = role == DataRole.Train ? "train" : "t10k";
        foreach (string suffix in new[] { ".gz", "" })
        {
            string images = Path.Combine(path, $"{prefix}-images-idx3-ubyte{suffix}");
            string labels = Path.Combine(path, $"{prefix}-labels-idx1-ubyte{suffix}");
            if (File.Exists(images) && File.Exists(labels))
                return (images, labels);
        }
        return required ? throw new UsageException($"'{path}' has no {prefix}-images-idx3-ubyte(.gz) with its {prefix}-labels-idx1-ubyte(.gz).") : null;
    }

    private static string? ImageSplit(string path, DataRole role, bool explicitPath)
    {
        if (!Directory.Exists(path))
            throw new UsageException($"The image folder '{path}' does not exist.");
        string[] names = role == DataRole.Train ? new[] { "train", "training" } : new[] { "test", "testing", "validation", "val" };
        bool hasSplits = Directory.Exists(Path.Combine(path, "train")) || Directory.Exists(Path.Combine(path, "test"));
        if (!hasSplits)
            return role == DataRole.Train || explicitPath ? path : null;
        return names.Select(n => Path.Combine(path, n)).FirstOrDefault(Directory.Exists);
    }

    /// <summary>The class names of a data view's key label.</summary>
    public static string[] ClassNames(IDataView view, string column = "Label")
    {
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        view.Schema[column].GetKeyValues(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    private sealed class TextRow
    {
        public string Text { get; set; } = "";
    }

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }
}
