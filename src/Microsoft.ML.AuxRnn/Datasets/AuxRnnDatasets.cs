using Microsoft.ML.AuxRnn.Transforms;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Datasets;

/// <summary>
/// Loaders for the data sets of the paper in their usual public formats. Each returns an <see cref="IDataView"/>
/// with a key column <c>"Label"</c> (its <c>KeyValues</c> are the class names, so <c>MapKeyToValue</c> restores
/// them) and, for pixel data, a known-size vector of <see cref="float"/> <c>"Features"</c> holding pixel
/// intensities 0..255 in the order they are read (row-major; interleaved R, G, B for colour), ready for
/// <c>mlContext.Transforms.AuxLstmClassifier()</c>. Problems with the files (missing, wrong magic number, truncated,
/// empty) throw <see cref="FileNotFoundException"/>, <see cref="DirectoryNotFoundException"/> or
/// <see cref="InvalidDataException"/> naming the file.
/// </summary>
public static class AuxRnnDatasets
{
    /// <summary>Name of the column with an image's file path in <see cref="ListImageFolder"/> and <see cref="LoadImageFolder"/>.</summary>
    public const string ImagePathColumnName = "ImagePath";

    /// <summary>Name of the column with a document's text in <see cref="LoadZhangCsv"/>.</summary>
    public const string TextColumnName = "Text";

    /// <summary>Name of the column with a document's title in <see cref="LoadZhangCsv"/> (empty when the file has none).</summary>
    public const string TitleColumnName = "Title";

    /// <summary>The ten MNIST classes, "0" to "9".</summary>
    public static IReadOnlyList<string> DigitClasses { get; } = Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The ten CIFAR-10 classes in label order (used when no <c>batches.meta.txt</c> is beside the batches).</summary>
    public static IReadOnlyList<string> Cifar10Classes { get; } = new[]
    {
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    };

    // ---------------------------------------------------------------- MNIST

    /// <summary>
    /// Loads MNIST (or any idx pair of the same shape, such as Fashion-MNIST) from LeCun's idx files, gzipped or not:
    /// "Label" (key over <paramref name="classNames"/>, by default "0".."9") and "Features" (the 28 × 28 = 784 pixel
    /// intensities 0..255 read row by row: pixel MNIST's 784 steps of one value).
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="imagesPath">The images file, e.g. <c>train-images-idx3-ubyte.gz</c> (magic number 0x00000803).</param>
    /// <param name="labelsPath">The labels file, e.g. <c>train-labels-idx1-ubyte.gz</c> (magic number 0x00000801).</param>
    /// <param name="permutationSeed">
    /// Permuted MNIST: when set, the pixels are read in the fixed order <see cref="PixelPermutation.Create"/> gives for
    /// this seed. Pass the same seed for training and test data (and to <c>ImageToPixelSequence</c> when scoring image
    /// files); the permutation is a function of the seed alone.
    /// </param>
    /// <param name="maxRows">Keep only the first this many images (null: all).</param>
    /// <param name="classNames">Names of the classes, in label order (default "0".."9").</param>
    public static IDataView LoadMnist(MLContext mlContext, string imagesPath, string labelsPath, int? permutationSeed = null,
        int? maxRows = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(imagesPath);
        ArgumentNullException.ThrowIfNull(labelsPath);
        if (maxRows is < 0)
            throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "must not be negative.");
        classNames ??= DigitClasses;

        var images = IdxFile.ReadBytes(imagesPath, 3, "images");
        var labels = IdxFile.ReadBytes(labelsPath, 1, "labels");
        int count = images.Dimensions[0], height = images.Dimensions[1], width = images.Dimensions[2];
        if (labels.Dimensions[0] != count)
            throw new InvalidDataException($"'{imagesPath}' holds {count:N0} images but '{labelsPath}' holds {labels.Dimensions[0]:N0} labels.");
        if (width * height == 0)
            throw new InvalidDataException($"'{imagesPath}' declares images of {height} x {width} pixels.");

        int rows = Math.Min(count, maxRows ?? count);
        int pixels = width * height;
        byte[] labelBytes = labels.Data.AsSpan(0, rows).ToArray();
        CheckLabels(labelBytes, classNames, labelsPath);
        byte[] pixelBytes = rows == count ? images.Data : images.Data.AsSpan(0, rows * pixels).ToArray();
        int[] order = permutationSeed is int seed ? PixelPermutation.Create(seed, pixels) : Identity(pixels);
        return new PixelDataView(labelBytes, pixelBytes, pixels, order, classNames);
    }

    // ---------------------------------------------------------------- CIFAR-10

    /// <summary>
    /// Loads CIFAR-10 binary batches (<c>data_batch_1.bin</c> … <c>data_batch_5.bin</c>, <c>test_batch.bin</c>): each
    /// record is a label byte and 3,072 bytes (1,024 red, 1,024 green, 1,024 blue, row-major). "Features" holds the
    /// 1,024 pixels read row by row with their colours interleaved (R, G, B, R, G, B, …): 1,024 steps of 3 values, so
    /// use <c>StepSize = 3</c>. Class names come from <c>batches.meta.txt</c> beside the first batch when present.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="batchFiles">One or more batch files, or a folder: then all its <c>data_batch_*.bin</c>.</param>
    public static IDataView LoadCifar10(MLContext mlContext, params string[] batchFiles)
        => LoadCifar10(mlContext, batchFiles, permutationSeed: null, maxRows: null);

    /// <summary>
    /// Loads CIFAR-10 binary batches as <see cref="LoadCifar10(MLContext, string[])"/> does, optionally permuting the
    /// pixel positions (each pixel keeps its three values together) and keeping only the first rows.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="batchFiles">One or more batch files, or a folder: then all its <c>data_batch_*.bin</c>.</param>
    /// <param name="permutationSeed">When set, the 1,024 pixels are read in the order <see cref="PixelPermutation.Create"/> gives.</param>
    /// <param name="maxRows">Keep only the first this many images (null: all).</param>
    public static IDataView LoadCifar10(MLContext mlContext, IReadOnlyList<string> batchFiles, int? permutationSeed, int? maxRows)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(batchFiles);
        if (maxRows is < 0)
            throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "must not be negative.");
        const int Side = 32, Pixels = Side * Side, Record = 1 + 3 * Pixels;

        var files = new List<string>();
        foreach (string path in batchFiles)
        {
            if (Directory.Exists(path))
            {
                var found = Directory.GetFiles(path, "data_batch_*.bin").Order(StringComparer.Ordinal).ToArray();
                if (found.Length == 0)
                    throw new FileNotFoundException($"The folder '{path}' has no CIFAR-10 training batches (data_batch_*.bin); pass the batch files themselves, e.g. '{Path.Combine(path, "test_batch.bin")}'.");
                files.AddRange(found);
            }
            else if (File.Exists(path))
                files.Add(path);
            else
                throw new FileNotFoundException($"The CIFAR-10 batch file '{path}' does not exist.", path);
        }
        if (files.Count == 0)
            throw new ArgumentException("Name at least one CIFAR-10 batch file.", nameof(batchFiles));

        var labels = new List<byte>();
        var pixels = new MemoryStream();
        int limit = maxRows ?? int.MaxValue;
        foreach (string file in files)
        {
            byte[] bytes = File.ReadAllBytes(file);
            if (bytes.Length == 0)
                throw new InvalidDataException($"'{file}' is empty: a CIFAR-10 batch holds records of {Record:N0} bytes.");
            if (bytes.Length % Record != 0)
                throw new InvalidDataException(
                    $"'{file}' is truncated or not a CIFAR-10 binary batch: its {bytes.Length:N0} bytes are not a whole number of " +
                    $"{Record:N0}-byte records (1 label byte + 3,072 pixel bytes); the last record has {bytes.Length % Record:N0} bytes.");
            for (int offset = 0; offset < bytes.Length && labels.Count < limit; offset += Record)
            {
                if (bytes[offset] >= 10)
                    throw new InvalidDataException(
                        $"'{file}' is not a CIFAR-10 binary batch: record {offset / Record:N0} has label {bytes[offset]} (CIFAR-10 labels are 0..9; CIFAR-100 batches have two label bytes).");
                labels.Add(bytes[offset]);
                pixels.Write(bytes, offset + 1, Record - 1);
            }
        }

        string meta = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(files[0]))!, "batches.meta.txt");
        IReadOnlyList<string> classes = Cifar10Classes;
        if (File.Exists(meta))
        {
            var names = File.ReadAllLines(meta).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
            if (names.Length == 10)
                classes = names;
        }

        int[] pixelOrder = permutationSeed is int seed ? PixelPermutation.Create(seed, Pixels) : Identity(Pixels);
        var slots = new int[3 * Pixels];
        for (int step = 0; step < Pixels; step++)
            for (int c = 0; c < 3; c++)
                slots[3 * step + c] = c * Pixels + pixelOrder[step]; // planar file → interleaved steps
        return new PixelDataView(labels.ToArray(), pixels.ToArray(), 3 * Pixels, slots, classes);
    }

    // ---------------------------------------------------------------- Zhang et al. csv

    /// <summary>
    /// Loads a text-classification csv in the format of Zhang, Zhao and LeCun (2015) — DBpedia, AG News, Yahoo!
    /// Answers, Yelp, Amazon: <c>"class","title","text"</c> (or <c>"class","text"</c>), class numbered from 1, fields
    /// quoted with doubled quotes inside — through ML.NET's <see cref="TextLoader"/>. Columns: "Label" (key; its
    /// <c>KeyValues</c> are the class names from <c>classes.txt</c> beside the file when present, otherwise the class
    /// numbers), "Title" (text; only when the file has three fields) and "Text" (text). Turn the text into a sequence in the pipeline, so a saved model scores
    /// raw text: <c>mlContext.Transforms.Text.TokenizeIntoCharactersAsKeys("Features", "Text")</c> for characters.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="path">The csv file (e.g. <c>train.csv</c>).</param>
    /// <param name="classNames">Class names in class-number order; default: read <c>classes.txt</c> beside the file.</param>
    /// <param name="maxRows">Keep only the first this many documents (null: all).</param>
    public static IDataView LoadZhangCsv(MLContext mlContext, string path, IReadOnlyList<string>? classNames = null, int? maxRows = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"The csv file '{path}' does not exist.", path);
        if (maxRows is < 0)
            throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "must not be negative.");

        string? firstLine = File.ReadLines(path).FirstOrDefault(l => l.Trim().Length > 0);
        if (firstLine == null)
            throw new InvalidDataException($"'{path}' is empty: expected lines of \"class\",\"title\",\"text\".");
        int fields = CountCsvFields(firstLine);
        if (fields is not (2 or 3))
            throw new InvalidDataException(
                $"'{path}' is not a Zhang et al. csv: its first line has {fields} field{(fields == 1 ? "" : "s")}, expected \"class\",\"title\",\"text\" or \"class\",\"text\".");

        var columns = new List<TextLoader.Column> { new("Class", DataKind.Int32, 0) };
        if (fields == 3)
        {
            columns.Add(new TextLoader.Column(TitleColumnName, DataKind.String, 1));
            columns.Add(new TextLoader.Column(TextColumnName, DataKind.String, 2));
        }
        else
        {
            columns.Add(new TextLoader.Column(TextColumnName, DataKind.String, 1));
        }
        var raw = mlContext.Data.LoadFromTextFile(path, new TextLoader.Options
        {
            Columns = columns.ToArray(),
            Separators = new[] { ',' },
            AllowQuoting = true,
            ReadMultilines = true,
            HasHeader = false,
            MaxRows = maxRows,
            MissingRealsAsNaNs = false,
        });

        // One pass over the class column: the file must hold rows, and every class must be a known number.
        var seen = new SortedSet<int>();
        long rows = 0;
        try
        {
            using var cursor = raw.GetRowCursor(new[] { raw.Schema["Class"] });
            var getClass = cursor.GetGetter<int>(raw.Schema["Class"]);
            int value = 0;
            while (cursor.MoveNext())
            {
                getClass(ref value);
                rows++;
                if (value < 1)
                    throw new InvalidDataException($"'{path}', row {rows:N0}: the class must be a number from 1, found {value}.");
                seen.Add(value);
            }
        }
        catch (FormatException e)
        {
            throw new InvalidDataException(
                $"'{path}', row {rows + 1:N0}: the first field must be a class number from 1 (a header line, or not a Zhang et al. csv?). {e.InnerException?.Message ?? e.Message}", e);
        }
        if (rows == 0)
            throw new InvalidDataException($"'{path}' holds no documents.");

        if (classNames == null)
        {
            string classesFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "classes.txt");
            classNames = File.Exists(classesFile)
                ? File.ReadAllLines(classesFile).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray()
                : Enumerable.Range(1, seen.Max).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        }
        if (classNames.Count == 0)
            throw new ArgumentException("Name at least one class.", nameof(classNames));
        if (seen.Max > classNames.Count)
            throw new InvalidDataException($"'{path}' has class {seen.Max}, but only {classNames.Count} class names are known (classes.txt beside the file, or classNames).");

        // Class number → key whose KeyValues are the names: MapValue with treatValuesAsKeyType keeps the names' order.
        var mapping = classNames.Select((name, i) => new KeyValuePair<int, string>(i + 1, name));
        IDataView view = mlContext.Transforms.Conversion.MapValue(DefaultColumnNames.Label, mapping, "Class", treatValuesAsKeyType: true)
            .Append(mlContext.Transforms.DropColumns("Class"))
            .Fit(raw).Transform(raw);
        return view;
    }

    // ---------------------------------------------------------------- folders of images

    /// <summary>
    /// Lists a folder with one sub-folder per class (<c>folder/&lt;class&gt;/&lt;image&gt;</c>): "Label" (key over the
    /// class names, ordinal order of the sub-folder names unless <paramref name="classNames"/> fixes them) and
    /// "ImagePath" (the full path of each .jpg, .jpeg, .png, .bmp, .gif or .webp file). Put
    /// <see cref="ImageFeaturizer"/> in the pipeline to read the pixels, so a saved model scores image files.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="folder">The folder whose sub-folders are the classes.</param>
    /// <param name="classNames">
    /// The classes and their order (pass the training set's to a validation or test folder, so keys agree even when
    /// a class is missing there). Default: the sub-folders that hold images, in ordinal order.
    /// </param>
    /// <param name="maxImagesPerClass">Keep only the first this many images of each class, in file-name order (null: all).</param>
    public static IDataView ListImageFolder(MLContext mlContext, string folder, IReadOnlyList<string>? classNames = null, int? maxImagesPerClass = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"The image folder '{folder}' does not exist.");
        if (maxImagesPerClass is < 1)
            throw new ArgumentOutOfRangeException(nameof(maxImagesPerClass), maxImagesPerClass, "must be at least 1.");

        var byClass = Directory.GetDirectories(folder)
            .Select(d => (Name: Path.GetFileName(d), Files: Directory.GetFiles(d).Where(IsImageFile).Order(StringComparer.Ordinal).ToArray()))
            .Where(c => c.Files.Length > 0)
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToArray();
        if (byClass.Length == 0)
            throw new InvalidDataException(
                $"The image folder '{folder}' has no class sub-folders with images: expected '{Path.Combine(folder, "<class>", "<image>.jpg")}' " +
                $"(extensions {string.Join(", ", ImageExtensions)}).");

        var classes = classNames ?? byClass.Select(c => c.Name).ToArray();
        if (classes.Count == 0)
            throw new ArgumentException("Name at least one class.", nameof(classNames));
        var known = classes.ToHashSet(StringComparer.Ordinal);
        var rows = new List<ImageFileRow>();
        foreach (var (name, files) in byClass)
        {
            if (!known.Contains(name))
                throw new InvalidDataException($"The image folder '{folder}' has a sub-folder '{name}' that is not among the classes {string.Join(", ", classes)}.");
            foreach (string file in files.Take(maxImagesPerClass ?? int.MaxValue))
                rows.Add(new ImageFileRow { ClassName = name, ImagePath = Path.GetFullPath(file) });
        }

        // Class name → key in the order of `classes` (MapValueToKey with fixed key data), names kept as KeyValues.
        var keyData = mlContext.Data.LoadFromEnumerable(classes.Select(c => new ClassNameRow { ClassName = c }));
        var list = mlContext.Data.LoadFromEnumerable(rows);
        return mlContext.Transforms.Conversion.MapValueToKey(DefaultColumnNames.Label, nameof(ImageFileRow.ClassName), keyData: keyData)
            .Append(mlContext.Transforms.SelectColumns(DefaultColumnNames.Label, ImagePathColumnName))
            .Fit(list).Transform(list);
    }

    /// <summary>
    /// Reads a folder with one sub-folder per class into "Label", "ImagePath" and "Features": each image loaded,
    /// resized to <paramref name="width"/> × <paramref name="height"/> (ImageAnalytics' <c>LoadImages</c> →
    /// <c>ResizeImages</c>) and read pixel by pixel (<c>ImageToPixelSequence</c>): width × height steps of 1 value
    /// (grey) or 3 (RGB, interleaved). 128 × 128 grey gives sequences of 16,384 steps. Images are decoded lazily,
    /// each time the data is read.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="folder">The folder whose sub-folders are the classes.</param>
    /// <param name="width">Width the images are resized to.</param>
    /// <param name="height">Height the images are resized to.</param>
    /// <param name="channels">Grey (1 value per step) or RGB (3 values per step).</param>
    /// <param name="permutationSeed">When set, pixels are read in the fixed order <see cref="PixelPermutation.Create"/> gives.</param>
    /// <param name="classNames">The classes and their order (see <see cref="ListImageFolder"/>).</param>
    /// <param name="maxImagesPerClass">Keep only the first this many images of each class (null: all).</param>
    public static IDataView LoadImageFolder(MLContext mlContext, string folder, int width, int height, PixelChannels channels = PixelChannels.Grey,
        int? permutationSeed = null, IReadOnlyList<string>? classNames = null, int? maxImagesPerClass = null)
    {
        var list = ListImageFolder(mlContext, folder, classNames, maxImagesPerClass);
        return ImageFeaturizer(mlContext, width, height, channels, permutationSeed).Fit(list).Transform(list);
    }

    /// <summary>
    /// The pipeline that turns an image-path column into a pixel sequence: <c>LoadImages</c> → <c>ResizeImages</c>
    /// (to <paramref name="width"/> × <paramref name="height"/>) → <c>ImageToPixelSequence</c>. Every step is an ML.NET
    /// transform, so a model that starts with it is saved with it and scores image files.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="width">Width the images are resized to.</param>
    /// <param name="height">Height the images are resized to.</param>
    /// <param name="channels">Grey (1 value per step) or RGB (3 values per step).</param>
    /// <param name="permutationSeed">When set, pixels are read in the fixed order <see cref="PixelPermutation.Create"/> gives.</param>
    /// <param name="outputColumnName">The pixel-sequence column (default "Features").</param>
    /// <param name="imagePathColumnName">The column with the image files' paths (default "ImagePath").</param>
    public static IEstimator<ITransformer> ImageFeaturizer(MLContext mlContext, int width, int height, PixelChannels channels = PixelChannels.Grey,
        int? permutationSeed = null, string outputColumnName = DefaultColumnNames.Features, string imagePathColumnName = ImagePathColumnName)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        if (width < 1)
            throw new ArgumentOutOfRangeException(nameof(width), width, "must be at least 1.");
        if (height < 1)
            throw new ArgumentOutOfRangeException(nameof(height), height, "must be at least 1.");
        const string Image = "__AuxRnnImage";
        return mlContext.Transforms.LoadImages(Image, imageFolder: null, imagePathColumnName)
            .Append(mlContext.Transforms.ResizeImages(Image, width, height, Image))
            .Append(mlContext.Transforms.ImageToPixelSequence(outputColumnName, Image, channels, permutationSeed))
            .Append(mlContext.Transforms.DropColumns(Image));
    }

    /// <summary>
    /// The 69 characters of Zhang, Zhao and LeCun's character-level models, plus space: lower-case letters, digits
    /// and punctuation. <see cref="CharacterFeaturizer"/> maps every other character to the missing key (token 0).
    /// </summary>
    public const string ZhangAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{} ";

    /// <summary>
    /// The pipeline that turns a text column into a character sequence over a small, fixed vocabulary:
    /// lower-cased (<c>NormalizeText</c>), split into characters (<c>TokenizeIntoCharactersAsKeys</c>), and each character
    /// mapped to its place in <paramref name="alphabet"/> (<c>MapValueToKey</c> with fixed key data), so the
    /// classifier's vocabulary is alphabet-sized (70) rather than all of Unicode (65,536 keys). Characters outside the
    /// alphabet become the missing key. All ML.NET transforms: a model that starts with it scores raw text.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="outputColumnName">The token-sequence column (default "Features"): a vector of keys.</param>
    /// <param name="inputColumnName">The text column (default "Text").</param>
    /// <param name="alphabet">The characters kept, in key order (default <see cref="ZhangAlphabet"/>).</param>
    public static IEstimator<ITransformer> CharacterFeaturizer(MLContext mlContext, string outputColumnName = DefaultColumnNames.Features,
        string inputColumnName = TextColumnName, string alphabet = ZhangAlphabet)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrEmpty(alphabet);
        if (alphabet.Contains((char)0))
            throw new ArgumentException("The alphabet must not hold the character U+0000.", nameof(alphabet));
        if (alphabet.Distinct().Count() != alphabet.Length)
            throw new ArgumentException("The alphabet must not repeat a character.", nameof(alphabet));
        const string Normalized = "__AuxRnnNormalized", Characters = "__AuxRnnCharacters";
        // The tokenizer's KeyValues spell some characters specially (a space is "<␠>"): take each alphabet character's
        // spelling from them (KeyValues entry i spells character i + 1), so MapKeyToValue → MapValueToKey finds it.
        var probe = mlContext.Data.LoadFromEnumerable(new[] { new ClassNameRow { ClassName = "a" } });
        var tokenized = mlContext.Transforms.Text.TokenizeIntoCharactersAsKeys(Characters, nameof(ClassNameRow.ClassName), useMarkerCharacters: false)
            .Fit(probe).Transform(probe);
        var spellings = default(VBuffer<ReadOnlyMemory<char>>);
        tokenized.Schema[Characters].GetKeyValues(ref spellings);
        var names = spellings.DenseValues().ToArray();
        var keyData = mlContext.Data.LoadFromEnumerable(alphabet.Select(c => new ClassNameRow { ClassName = names[c - 1].ToString() }).ToList());
        return mlContext.Transforms.Text.NormalizeText(Normalized, inputColumnName,
                Microsoft.ML.Transforms.Text.TextNormalizingEstimator.CaseMode.Lower, keepDiacritics: false, keepPunctuations: true, keepNumbers: true)
            .Append(mlContext.Transforms.Text.TokenizeIntoCharactersAsKeys(Characters, Normalized, useMarkerCharacters: false))
            .Append(mlContext.Transforms.Conversion.MapKeyToValue(Characters))
            .Append(mlContext.Transforms.Conversion.MapValueToKey(outputColumnName, Characters, keyData: keyData))
            .Append(mlContext.Transforms.DropColumns(Normalized, Characters));
    }

    /// <summary>File extensions <see cref="ListImageFolder"/> treats as images.</summary>
    public static IReadOnlyList<string> ImageExtensions { get; } = new[] { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp" };

    private static bool IsImageFile(string path)
        => ImageExtensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);

    private static int[] Identity(int length) => Enumerable.Range(0, length).ToArray();

    private static void CheckLabels(byte[] labels, IReadOnlyList<string> classNames, string path)
    {
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= classNames.Count)
                throw new InvalidDataException($"'{path}': label {labels[i]} of image {i:N0} is not one of the {classNames.Count} classes (0..{classNames.Count - 1}).");
        }
    }

    /// <summary>Fields of one csv line, with double-quoted fields that may hold commas and doubled quotes.</summary>
    private static int CountCsvFields(string line)
    {
        int fields = 1;
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (c == '"')
                quoted = !quoted; // a doubled quote toggles twice
            else if (c == ',' && !quoted)
                fields++;
        }
        return fields;
    }

    internal sealed class ImageFileRow
    {
        public string ClassName { get; set; } = "";

        public string ImagePath { get; set; } = "";
    }

    internal sealed class ClassNameRow
    {
        public string ClassName { get; set; } = "";
    }
}
