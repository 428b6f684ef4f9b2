using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.AuxRnn.Transforms;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static Microsoft.ML.AuxRnn.Tests.Datasets.ViewReader;

namespace Microsoft.ML.AuxRnn.Tests.Transforms;

public class ImageToPixelSequenceTests
{
    private readonly MLContext _ml = new(seed: 1);

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    private static string[] ClothingFiles(int count) =>
        Directory.GetFiles(TestData.Path("clothing128", "validation"), "*.jpg", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Take(count).ToArray();

    private IDataView Paths(IEnumerable<string> files) => _ml.Data.LoadFromEnumerable(files.Select(f => new PathRow { ImagePath = f }).ToList());

    /// <summary>SchemaShape.Create is internal to ML.NET; estimators' GetOutputSchema takes its result.</summary>
    private static SchemaShape ShapeOf(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static, new[] { typeof(DataViewSchema) })!
            .Invoke(null, new object[] { schema })!;

    [Fact]
    public void GreyAndRgbLayoutsMatchTheRawPixelsRowByRow()
    {
        string[] files = ClothingFiles(3);
        var images = _ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(Paths(files)).Transform(Paths(files));
        var grey = Vectors(_ml.Transforms.ImageToPixelSequence("Seq", "Image").Fit(images).Transform(images), "Seq");
        var rgb = Vectors(_ml.Transforms.ImageToPixelSequence("Seq", "Image", PixelChannels.Rgb).Fit(images).Transform(images), "Seq");

        for (int i = 0; i < files.Length; i++)
        {
            using var image = MLImage.CreateFromFile(files[i]);
            byte[] px = image.Pixels.ToArray();
            int w = image.Width, h = image.Height;
            (int r, int g, int b) = image.PixelFormat == MLPixelFormat.Bgra32 ? (2, 1, 0) : (0, 1, 2);
            rgb[i].Should().HaveCount(3 * w * h);
            grey[i].Should().HaveCount(w * h);
            foreach (var (y, x) in new[] { (0, 0), (0, w - 1), (1, 0), (h / 2, w / 3), (h - 1, w - 1) })
            {
                int step = y * w + x, p = 4 * step; // row-major: step y * width + x is pixel (x, y)
                rgb[i][3 * step].Should().Be(px[p + r]);
                rgb[i][3 * step + 1].Should().Be(px[p + g]);
                rgb[i][3 * step + 2].Should().Be(px[p + b]);
                grey[i][step].Should().Be((30 * px[p + r] + 59 * px[p + g] + 11 * px[p + b] + 50) / 100);
            }
            rgb[i].Should().OnlyContain(v => v >= 0 && v <= 255);
        }

        // ML.NET's own ExtractPixels gives the same RGB values when asked to interleave (its default is plane by plane).
        // (ExtractPixels needs a known image size, hence the resize.)
        var small = _ml.Transforms.ResizeImages("Image", 32, 32).Fit(images).Transform(images);
        var ours = Vectors(_ml.Transforms.ImageToPixelSequence("Seq", "Image", PixelChannels.Rgb).Fit(small).Transform(small), "Seq");
        var extracted = Vectors(_ml.Transforms.ExtractPixels("Px", "Image", interleavePixelColors: true).Fit(small).Transform(small), "Px");
        var planar = Vectors(_ml.Transforms.ExtractPixels("Px", "Image").Fit(small).Transform(small), "Px");
        for (int i = 0; i < files.Length; i++)
        {
            ours[i].Should().Equal(extracted[i]);
            planar[i].Should().NotEqual(ours[i]);
        }
    }

    [Fact]
    public void OutputSizeIsKnownAfterResizeAndVariableOtherwise()
    {
        var data = Paths(ClothingFiles(2));
        var loaded = _ml.Transforms.LoadImages("Image", null, "ImagePath");
        var resized = loaded.Append(_ml.Transforms.ResizeImages("Image", 20, 10));

        var known = resized.Append(_ml.Transforms.ImageToPixelSequence("Seq", "Image", PixelChannels.Rgb));
        known.GetOutputSchema(ShapeOf(data.Schema)).Single(c => c.Name == "Seq").Kind.Should().Be(SchemaShape.Column.VectorKind.Vector);
        var knownView = known.Fit(data).Transform(data);
        knownView.Schema["Seq"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 20 * 10 * 3));
        Vectors(knownView, "Seq").Should().OnlyContain(v => v.Length == 600);

        var variable = loaded.Append(_ml.Transforms.ImageToPixelSequence("Seq", "Image"));
        variable.GetOutputSchema(ShapeOf(data.Schema)).Single(c => c.Name == "Seq").Kind.Should().Be(SchemaShape.Column.VectorKind.VariableVector);
        var variableView = variable.Fit(data).Transform(data);
        variableView.Schema["Seq"].Type.Should().BeOfType<VectorDataViewType>().Which.Size.Should().Be(0);
        Vectors(variableView, "Seq").Should().OnlyContain(v => v.Length == 128 * 128);
    }

    [Fact]
    public void SaveAndLoadGivesIdenticalOutputAndKeepsThePermutation()
    {
        var data = Paths(ClothingFiles(4));
        var pipeline = _ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(_ml.Transforms.ResizeImages("Image", 24, 24))
            .Append(_ml.Transforms.ImageToPixelSequence("Features", "Image", PixelChannels.Rgb, permutationSeed: 1234));
        var model = pipeline.Fit(data);
        var before = Vectors(model.Transform(data), "Features");

        using var stream = new MemoryStream();
        _ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = new MLContext(seed: 7).Model.Load(stream, out var schema);
        var after = Vectors(loaded.Transform(data), "Features");

        after.Should().HaveCount(4);
        for (int i = 0; i < 4; i++)
            after[i].Should().Equal(before[i]);
        var transformer = ((TransformerChain<ITransformer>)loaded).OfType<ImageToPixelSequenceTransformer>().Single();
        transformer.PermutationSeed.Should().Be(1234);
        transformer.Channels.Should().Be(PixelChannels.Rgb);

        // The permutation really is applied: the unpermuted sequence, reordered pixel by pixel, gives the saved output.
        var unpermuted = Vectors(_ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(_ml.Transforms.ResizeImages("Image", 24, 24))
            .Append(_ml.Transforms.ImageToPixelSequence("Features", "Image", PixelChannels.Rgb)).Fit(data).Transform(data), "Features");
        int[] order = PixelPermutation.Create(1234, 24 * 24);
        var reordered = order.SelectMany(p => unpermuted[0].Skip(3 * p).Take(3)).ToArray();
        after[0].Should().Equal(reordered);
        after[0].Should().NotEqual(unpermuted[0]);
    }

    [Fact]
    public void PngDigitsScoredWithASeedMatchPermutedMnistFromIdxWithTheSameSeed()
    {
        // So a model trained on permuted MNIST idx files scores PNG files with the same permutation.
        string[] pngs = Directory.GetDirectories(TestData.Path("mnist", "png-sample")).Order()
            .Select(d => Directory.GetFiles(d, "*.png").Order().First()).ToArray();
        var data = Paths(pngs);
        var sequences = Vectors(_ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(_ml.Transforms.ImageToPixelSequence("Features", "Image", permutationSeed: 77)).Fit(data).Transform(data), "Features");
        var idx = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(_ml, TestData.Path("mnist", "t10k-images-idx3-ubyte.gz"),
            TestData.Path("mnist", "t10k-labels-idx1-ubyte.gz"), permutationSeed: 77));

        for (int i = 0; i < pngs.Length; i++)
            sequences[i].Should().Equal(idx[int.Parse(Path.GetFileNameWithoutExtension(pngs[i]))].Features, pngs[i]);
    }

    [Fact]
    public void WrongInputsAreRejectedNamingTheColumn()
    {
        var data = Paths(ClothingFiles(1));
        var notImage = () => _ml.Transforms.ImageToPixelSequence("Seq", "ImagePath").Fit(data);
        notImage.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*ImagePath*image*");

        var missing = () => _ml.Transforms.ImageToPixelSequence("Seq", "Picture").GetOutputSchema(ShapeOf(data.Schema));
        missing.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Picture*");

        var badChannels = () => _ml.Transforms.ImageToPixelSequence("Seq", "Image", (PixelChannels)2);
        badChannels.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*channels*");
    }
}
