using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Transforms;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;

[assembly: LoadableClass(typeof(ImageToPixelSequenceTransformer), null, typeof(SignatureLoadModel),
    ImageToPixelSequenceTransformer.UserName, ImageToPixelSequenceTransformer.LoaderSignature)]

[assembly: LoadableClass(typeof(IRowMapper), typeof(ImageToPixelSequenceTransformer), null, typeof(SignatureLoadRowMapper),
    ImageToPixelSequenceTransformer.UserName, ImageToPixelSequenceTransformer.LoaderSignature)]

[assembly: LoadableClass(typeof(IDataTransform), typeof(ImageToPixelSequenceTransformer), null, typeof(SignatureLoadDataTransform),
    ImageToPixelSequenceTransformer.UserName, ImageToPixelSequenceTransformer.LoaderSignature)]

namespace Microsoft.ML.AuxRnn.Transforms;

/// <summary>
/// Turns an image column (from <c>LoadImages</c> / <c>ResizeImages</c>) into a pixel sequence for
/// <c>AuxLstmClassifier</c>: a vector of <see cref="float"/> with the pixels read row by row, top-left first, each
/// step holding one grey level or three interleaved colour values (R, G, B), all 0..255, optionally in the fixed
/// order of a seeded permutation (permuted MNIST) that is saved with the model. Made by
/// <see cref="ImageToPixelSequenceEstimator"/> (<c>mlContext.Transforms.ImageToPixelSequence(...)</c>).
/// </summary>
/// <remarks>
/// ML.NET's <c>ExtractPixels</c> lays colours out plane by plane by default (all reds, then all greens, …), which is not
/// a sequence of pixels; this transform's layout is, and its output size is known whenever the image column's size
/// is (after <c>ResizeImages</c>). Alpha is ignored.
/// </remarks>
public sealed class ImageToPixelSequenceTransformer : OneToOneTransformerBase
{
    internal const string UserName = "Image To Pixel Sequence Transform";
    internal const string LoaderSignature = "ImageToPixelSequence";
    private const string RegistrationName = "ImageToPixelSequence";

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "IMGPXSEQ",
        verWrittenCur: 0x00010001, // initial: columns, channels, optional permutation seed
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(ImageToPixelSequenceTransformer).Assembly.FullName);

    /// <summary>Grey (1 value per step) or RGB (3 interleaved values per step).</summary>
    public PixelChannels Channels { get; }

    /// <summary>Seed of the fixed pixel permutation (<see cref="PixelPermutation.Create"/>); null: row-major order.</summary>
    public int? PermutationSeed { get; }

    /// <summary>The (output, input) column pairs.</summary>
    public IReadOnlyList<(string OutputColumnName, string InputColumnName)> Columns => ColumnPairs;

    internal ImageToPixelSequenceTransformer(IHostEnvironment env, PixelChannels channels, int? permutationSeed, params (string outputColumnName, string inputColumnName)[] columns)
        : base(Contracts.CheckRef(env, nameof(env)).Register(RegistrationName), columns)
    {
        Host.CheckUserArg(Enum.IsDefined(channels), nameof(channels), $"must be {nameof(PixelChannels.Grey)} or {nameof(PixelChannels.Rgb)}, not {(int)channels}");
        Channels = channels;
        PermutationSeed = permutationSeed;
    }

    // Factory method for SignatureLoadModel.
    private static ImageToPixelSequenceTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        // Checked before LoadModel is compiled: loading uses ML.NET internals, which another ML.NET release may lack.
        MLNetVersionGuard.Check();
        return LoadModel(env, ctx);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static ImageToPixelSequenceTransformer LoadModel(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        var host = env.Register(RegistrationName);
        host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());
        return new ImageToPixelSequenceTransformer(host, ctx);
    }

    private ImageToPixelSequenceTransformer(IHost host, ModelLoadContext ctx)
        : base(host, ctx)
    {
        // *** Binary format ***
        // <base: column pairs>
        // int: values per step (1 = grey, 3 = RGB)
        // byte: 1 when a permutation is applied
        // int: permutation seed (present when the byte is 1)
        int channels = ctx.Reader.ReadInt32();
        Host.CheckDecode(channels is (int)PixelChannels.Grey or (int)PixelChannels.Rgb, "values per step must be 1 or 3");
        Channels = (PixelChannels)channels;
        byte permuted = ctx.Reader.ReadByte();
        Host.CheckDecode(permuted <= 1, "the permutation flag must be 0 or 1");
        PermutationSeed = permuted == 1 ? ctx.Reader.ReadInt32() : null;
    }

    // Factory method for SignatureLoadDataTransform.
    private static IDataTransform Create(IHostEnvironment env, ModelLoadContext ctx, IDataView input)
        => Create(env, ctx).MakeDataTransform(input);

    // Factory method for SignatureLoadRowMapper.
    private static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);

    /// <inheritdoc/>
    protected override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        SaveColumns(ctx);
        ctx.Writer.Write((int)Channels);
        ctx.Writer.Write((byte)(PermutationSeed.HasValue ? 1 : 0));
        if (PermutationSeed is int seed)
            ctx.Writer.Write(seed);
    }

    /// <inheritdoc/>
    protected override void CheckInputColumn(DataViewSchema inputSchema, int col, int srcCol)
    {
        var type = inputSchema[srcCol].Type;
        if (type is not ImageDataViewType)
            throw Host.ExceptSchemaMismatch(nameof(inputSchema), "input", ColumnPairs[col].inputColumnName, "image (from LoadImages)", type.ToString());
    }

    /// <inheritdoc/>
    protected override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

    /// <summary>The output type for an image column of type <paramref name="image"/>: known size when the image's is.</summary>
    internal static VectorDataViewType OutputType(ImageDataViewType image, PixelChannels channels)
        => image.Height > 0 && image.Width > 0
            ? new VectorDataViewType(NumberDataViewType.Single, checked(image.Height * image.Width * (int)channels))
            : new VectorDataViewType(NumberDataViewType.Single);

    /// <summary>
    /// Writes the pixel sequence of a 32-bit BGRA or RGBA image into <paramref name="destination"/>
    /// (width × height × channels values); <paramref name="order"/>, when given, is the permutation of the pixels.
    /// </summary>
    internal static void WritePixels(MLImage image, PixelChannels channels, int[]? order, Span<float> destination)
    {
        int pixels = image.Width * image.Height;
        ReadOnlySpan<byte> bytes = image.Pixels;
        if (image.BitsPerPixel != 32 || bytes.Length != pixels * 4)
            throw new InvalidOperationException($"Unsupported image layout: {image.BitsPerPixel} bits per pixel, {bytes.Length} bytes for {image.Width} x {image.Height} pixels.");
        int r, g, b;
        switch (image.PixelFormat)
        {
            case MLPixelFormat.Bgra32:
                (b, g, r) = (0, 1, 2);
                break;
            case MLPixelFormat.Rgba32:
                (r, g, b) = (0, 1, 2);
                break;
            default:
                throw new InvalidOperationException($"Unsupported pixel format {image.PixelFormat}.");
        }

        for (int step = 0; step < pixels; step++)
        {
            int p = 4 * (order == null ? step : order[step]);
            if (channels == PixelChannels.Grey)
            {
                destination[step] = (30 * bytes[p + r] + 59 * bytes[p + g] + 11 * bytes[p + b] + 50) / 100;
            }
            else
            {
                destination[3 * step] = bytes[p + r];
                destination[3 * step + 1] = bytes[p + g];
                destination[3 * step + 2] = bytes[p + b];
            }
        }
    }

    private sealed class Mapper : OneToOneMapperBase
    {
        private readonly ImageToPixelSequenceTransformer _transformer;
        private readonly VectorDataViewType[] _types;
        private readonly Dictionary<int, int[]> _permutations = new();

        public Mapper(ImageToPixelSequenceTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), parent, inputSchema)
        {
            _transformer = parent;
            _types = new VectorDataViewType[parent.ColumnPairs.Length];
            for (int i = 0; i < _types.Length; i++)
                _types[i] = OutputType((ImageDataViewType)inputSchema[ColMapNewToOld[i]].Type, parent.Channels);
        }

        protected override DataViewSchema.DetachedColumn[] GetOutputColumnsCore()
            => _transformer.ColumnPairs.Select((pair, i) => new DataViewSchema.DetachedColumn(pair.outputColumnName, _types[i])).ToArray();

        protected override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action disposer)
        {
            Host.AssertValue(input);
            var inputColumn = input.Schema[ColMapNewToOld[iinfo]];
            var getImage = input.GetGetter<MLImage>(inputColumn);
            MLImage image = null!; // owned here: the upstream getter disposes the previous image when it writes the next
            disposer = () =>
            {
                image?.Dispose();
                image = null!;
            };

            var channels = _transformer.Channels;
            int expected = _types[iinfo].Size;
            string outputName = _transformer.ColumnPairs[iinfo].outputColumnName;
            ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> dst) =>
            {
                getImage(ref image);
                if (image == null)
                    throw Host.Except($"Column '{inputColumn.Name}' has no image in this row, so '{outputName}' cannot be computed (was the file missing or unreadable?).");
                int length = checked(image.Width * image.Height * (int)channels);
                if (expected > 0 && length != expected)
                    throw Host.Except($"Column '{inputColumn.Name}' declares {inputColumn.Type} images but this row's is {image.Width} x {image.Height}.");
                var editor = VBufferEditor.Create(ref dst, length);
                WritePixels(image, channels, Permutation(image.Width * image.Height), editor.Values);
                dst = editor.Commit();
            };
            return getter;
        }

        private int[]? Permutation(int pixels)
        {
            if (_transformer.PermutationSeed is not int seed)
                return null;
            lock (_permutations)
            {
                if (!_permutations.TryGetValue(pixels, out int[]? order))
                    _permutations[pixels] = order = PixelPermutation.Create(seed, pixels);
                return order;
            }
        }
    }
}

/// <summary>
/// Estimator for <see cref="ImageToPixelSequenceTransformer"/>: trivial (fitting learns nothing), made by
/// <c>mlContext.Transforms.ImageToPixelSequence(outputColumnName, inputColumnName, channels, permutationSeed)</c>.
/// </summary>
public sealed class ImageToPixelSequenceEstimator : TrivialEstimator<ImageToPixelSequenceTransformer>
{
    internal ImageToPixelSequenceEstimator(IHostEnvironment env, PixelChannels channels, int? permutationSeed, params (string outputColumnName, string inputColumnName)[] columns)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(ImageToPixelSequenceEstimator)), new ImageToPixelSequenceTransformer(env, channels, permutationSeed, columns))
    {
    }

    /// <summary>Each output is a vector of <see cref="float"/>; its input must be a scalar image column.</summary>
    public override SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Host.CheckValue(inputSchema, nameof(inputSchema));
        var result = inputSchema.ToDictionary(c => c.Name);
        foreach (var (output, input) in Transformer.Columns)
        {
            if (!inputSchema.TryFindColumn(input, out var column))
                throw Host.ExceptSchemaMismatch(nameof(inputSchema), "input", input);
            if (column.ItemType is not ImageDataViewType image || column.Kind != SchemaShape.Column.VectorKind.Scalar)
                throw Host.ExceptSchemaMismatch(nameof(inputSchema), "input", input, "image (from LoadImages)", column.GetTypeString());
            var kind = image.Height > 0 && image.Width > 0 ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector;
            result[output] = new SchemaShape.Column(output, kind, NumberDataViewType.Single, false);
        }
        return new SchemaShape(result.Values);
    }
}
