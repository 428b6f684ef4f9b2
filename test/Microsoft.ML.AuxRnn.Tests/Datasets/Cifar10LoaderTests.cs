using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;
using static Microsoft.ML.AuxRnn.Tests.Datasets.ViewReader;

namespace Microsoft.ML.AuxRnn.Tests.Datasets;

public class Cifar10LoaderTests
{
    private static readonly string TestBatch = TestData.Path("cifar10", "test_batch.bin");
    private readonly MLContext _ml = new(seed: 1);

    [Fact]
    public void LoadsInterleavedRgbStepsAndTheClassNames()
    {
        var view = AuxRnnDatasets.LoadCifar10(_ml, TestBatch);

        view.GetRowCount().Should().Be(40);
        KeyNames(view.Schema["Label"]).Should().Equal(File.ReadAllLines(TestData.Path("cifar10", "batches.meta.txt")).Where(l => l.Length > 0));
        view.Schema["Features"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 3 * 1024));

        var rows = LabelsAndFeatures(view);
        byte[] raw = File.ReadAllBytes(TestBatch);
        foreach (int row in new[] { 0, 1, 17, 39 })
        {
            int record = row * 3073;
            rows[row].Label.Should().Be(raw[record] + 1u);
            for (int pixel = 0; pixel < 1024; pixel += 37)
            {
                // Step `pixel` holds (R, G, B) of that pixel; the file stores all reds, then greens, then blues.
                rows[row].Features[3 * pixel].Should().Be(raw[record + 1 + pixel]);
                rows[row].Features[3 * pixel + 1].Should().Be(raw[record + 1 + 1024 + pixel]);
                rows[row].Features[3 * pixel + 2].Should().Be(raw[record + 1 + 2048 + pixel]);
            }
        }
        rows.Select(r => r.Label).Distinct().Should().HaveCount(10);
    }

    [Fact]
    public void SeveralBatchesAndFoldersConcatenateAndPermutationKeepsColoursTogether()
    {
        var both = AuxRnnDatasets.LoadCifar10(_ml, TestBatch, TestData.Path("cifar10", "data_batch_1.bin"));
        both.GetRowCount().Should().Be(100);
        AuxRnnDatasets.LoadCifar10(_ml, TestData.Path("cifar10")).GetRowCount().Should().Be(60, "a folder means its data_batch_*.bin files");

        var plain = LabelsAndFeatures(AuxRnnDatasets.LoadCifar10(_ml, new[] { TestBatch }, permutationSeed: null, maxRows: 3));
        var permuted = LabelsAndFeatures(AuxRnnDatasets.LoadCifar10(_ml, new[] { TestBatch }, permutationSeed: 5, maxRows: 3));
        plain.Should().HaveCount(3);
        int[] order = PixelPermutation.Create(5, 1024);
        for (int step = 0; step < 1024; step++)
            for (int c = 0; c < 3; c++)
                permuted[2].Features[3 * step + c].Should().Be(plain[2].Features[3 * order[step] + c]);
    }

    [Fact]
    public void MissingTruncatedAndForeignFilesAreReported()
    {
        using var temp = new TempFolder();
        var missing = () => AuxRnnDatasets.LoadCifar10(_ml, temp.File("data_batch_9.bin"));
        missing.Should().Throw<FileNotFoundException>().WithMessage("*data_batch_9.bin*");

        var emptyFolder = () => AuxRnnDatasets.LoadCifar10(_ml, temp.Path);
        emptyFolder.Should().Throw<FileNotFoundException>().WithMessage("*no CIFAR-10 training batches*");

        string cut = temp.File("cut.bin");
        File.WriteAllBytes(cut, File.ReadAllBytes(TestBatch).AsSpan(0, 3073 * 2 + 100).ToArray());
        var truncated = () => AuxRnnDatasets.LoadCifar10(_ml, cut);
        truncated.Should().Throw<InvalidDataException>().WithMessage("*cut.bin*truncated*last record has 100 bytes*");

        string foreign = temp.File("foreign.bin");
        var bytes = new byte[3073];
        bytes[0] = 57; // not a CIFAR-10 label
        File.WriteAllBytes(foreign, bytes);
        var wrong = () => AuxRnnDatasets.LoadCifar10(_ml, foreign);
        wrong.Should().Throw<InvalidDataException>().WithMessage("*foreign.bin*label 57*");
    }
}
