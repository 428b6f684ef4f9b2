using System.IO.Compression;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;
using static Microsoft.ML.AuxRnn.Tests.Datasets.ViewReader;

namespace Microsoft.ML.AuxRnn.Tests.Datasets;

public class MnistLoaderTests
{
    private static readonly string Images = TestData.Path("mnist", "t10k-images-idx3-ubyte.gz");
    private static readonly string Labels = TestData.Path("mnist", "t10k-labels-idx1-ubyte.gz");
    private readonly MLContext _ml = new(seed: 1);

    [Fact]
    public void LoadsLabelsAsKeysAndPixelsAsA784VectorThatMatchesThePngFiles()
    {
        var view = AuxRnnDatasets.LoadMnist(_ml, Images, Labels);

        view.GetRowCount().Should().Be(300);
        var label = view.Schema["Label"];
        label.Type.Should().BeOfType<KeyDataViewType>().Which.Count.Should().Be(10UL);
        KeyNames(label).Should().Equal("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");
        view.Schema["Features"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 784));

        var rows = LabelsAndFeatures(view);
        rows.Should().HaveCount(300);
        rows.SelectMany(r => r.Features).Should().OnlyContain(v => v >= 0 && v <= 255 && v == MathF.Round(v));
        rows.Select(r => r.Label).Distinct().Should().BeEquivalentTo(Enumerable.Range(1, 10).Select(i => (uint)i));

        // png-sample/<digit>/<index>.png are rows of the t10k idx files: the idx row must hold the same label and pixels.
        foreach (string digitFolder in Directory.GetDirectories(TestData.Path("mnist", "png-sample")).Order().Take(10))
        {
            string file = Directory.GetFiles(digitFolder, "*.png").Order().First();
            int index = int.Parse(Path.GetFileNameWithoutExtension(file));
            int digit = int.Parse(Path.GetFileName(digitFolder));
            rows[index].Label.Should().Be((uint)digit + 1, "keys are 1-based: digit d is key d + 1");
            using var png = MLImage.CreateFromFile(file);
            var pixels = png.Pixels.ToArray();
            var expected = Enumerable.Range(0, 784).Select(i => (float)pixels[4 * i]).ToArray(); // grey: R = G = B
            rows[index].Features.Should().Equal(expected, $"{file} is t10k image {index}");
        }
    }

    [Fact]
    public void ReadsUncompressedIdxFilesAndMaxRows()
    {
        using var temp = new TempFolder();
        string images = temp.File("t10k-images-idx3-ubyte"), labels = temp.File("t10k-labels-idx1-ubyte");
        Decompress(Images, images);
        Decompress(Labels, labels);

        var plain = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(_ml, images, labels, maxRows: 50));
        var gzipped = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(_ml, Images, Labels), max: 50);

        plain.Should().HaveCount(50);
        plain.Select(r => r.Label).Should().Equal(gzipped.Select(r => r.Label));
        for (int i = 0; i < 50; i++)
            plain[i].Features.Should().Equal(gzipped[i].Features);
    }

    [Fact]
    public void PermutedMnistAppliesOneFixedPermutationDeterminedByTheSeed()
    {
        var plain = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(_ml, Images, Labels, maxRows: 20));
        var permuted = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(_ml, Images, Labels, permutationSeed: 42, maxRows: 20));
        var again = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(new MLContext(seed: 99), Images, Labels, permutationSeed: 42, maxRows: 20));
        var other = LabelsAndFeatures(AuxRnnDatasets.LoadMnist(_ml, Images, Labels, permutationSeed: 43, maxRows: 20));

        int[] order = PixelPermutation.Create(42, 784);
        order.Order().Should().Equal(Enumerable.Range(0, 784), "it is a permutation");
        order.Should().NotEqual(Enumerable.Range(0, 784));
        for (int i = 0; i < 20; i++)
        {
            permuted[i].Label.Should().Be(plain[i].Label);
            permuted[i].Features.Should().Equal(order.Select(p => plain[i].Features[p]));
            again[i].Features.Should().Equal(permuted[i].Features, "the permutation depends on the seed only");
        }
        other.SelectMany(r => r.Features).Should().NotEqual(permuted.SelectMany(r => r.Features));
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        string missing = TestData.Path("mnist", "no-such-images-idx3-ubyte.gz");
        var act = () => AuxRnnDatasets.LoadMnist(_ml, missing, Labels);
        act.Should().Throw<FileNotFoundException>().WithMessage($"*{missing}*");
    }

    [Fact]
    public void WrongMagicNumberIsReported()
    {
        // The labels file (magic 0x00000801) passed as the images file (0x00000803).
        var act = () => AuxRnnDatasets.LoadMnist(_ml, Labels, Labels);
        act.Should().Throw<InvalidDataException>().WithMessage("*magic number is 0x00000801, expected 0x00000803*");
    }

    [Fact]
    public void TruncatedFilesAreReported()
    {
        using var temp = new TempFolder();
        string images = temp.File("images"), labels = temp.File("labels");
        Decompress(Images, images);
        Decompress(Labels, labels);
        byte[] bytes = File.ReadAllBytes(images);

        File.WriteAllBytes(images, bytes.AsSpan(0, bytes.Length - 100).ToArray());
        var act = () => AuxRnnDatasets.LoadMnist(_ml, images, labels);
        act.Should().Throw<InvalidDataException>().WithMessage("*truncated*300 x 28 x 28*");

        File.WriteAllBytes(images, bytes.AsSpan(0, 10).ToArray()); // cut inside the header
        act.Should().Throw<InvalidDataException>().WithMessage("*truncated*header*");

        // A gzip file cut short is reported too (by the gzip reader or by the size check).
        byte[] gz = File.ReadAllBytes(Images);
        string cutGz = temp.File("cut.gz");
        File.WriteAllBytes(cutGz, gz.AsSpan(0, gz.Length / 2).ToArray());
        var actGz = () => AuxRnnDatasets.LoadMnist(_ml, cutGz, Labels);
        actGz.Should().Throw<InvalidDataException>().WithMessage("*cut.gz*");
    }

    [Fact]
    public void ImagesAndLabelsOfDifferentCountsAreRejected()
    {
        // A labels file one record short (the header says 299).
        using var temp = new TempFolder();
        string labels = temp.File("labels"), shortLabels = temp.File("short-labels-idx1-ubyte");
        Decompress(Labels, labels);
        byte[] bytes = File.ReadAllBytes(labels);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), 299);
        File.WriteAllBytes(shortLabels, bytes.AsSpan(0, bytes.Length - 1).ToArray());
        var act = () => AuxRnnDatasets.LoadMnist(_ml, Images, shortLabels);
        act.Should().Throw<InvalidDataException>().WithMessage("*300 images*299 labels*");
    }

    private static void Decompress(string gz, string target)
    {
        using var input = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress);
        using var output = File.Create(target);
        input.CopyTo(output);
    }
}
