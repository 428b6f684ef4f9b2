using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;
using static Microsoft.ML.AuxRnn.Tests.Datasets.ViewReader;

namespace Microsoft.ML.AuxRnn.Tests.Datasets;

public class ImageFolderLoaderTests
{
    private static readonly string Validation = TestData.Path("clothing128", "validation");
    private readonly MLContext _ml = new(seed: 1);

    [Fact]
    public void ListsEveryImageWithItsClassFolderAsKey()
    {
        var view = AuxRnnDatasets.ListImageFolder(_ml, Validation);

        var classFolders = Directory.GetDirectories(Validation).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        KeyNames(view.Schema["Label"]).Should().Equal(classFolders);
        var labels = Column<uint>(view, "Label");
        var paths = Column<ReadOnlyMemory<char>>(view, "ImagePath").Select(p => p.ToString()).ToList();
        paths.Should().HaveCount(Directory.GetFiles(Validation, "*.jpg", SearchOption.AllDirectories).Length);
        for (int i = 0; i < paths.Count; i += 17)
            Path.GetFileName(Path.GetDirectoryName(paths[i])).Should().Be(classFolders[labels[i] - 1]);
    }

    [Fact]
    public void LoadsResizedGreyAndRgbPixelSequences()
    {
        var grey = AuxRnnDatasets.LoadImageFolder(_ml, Validation, 16, 16, PixelChannels.Grey, maxImagesPerClass: 2);
        var rgb = AuxRnnDatasets.LoadImageFolder(_ml, Validation, 16, 16, PixelChannels.Rgb, maxImagesPerClass: 2);

        grey.Schema["Features"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 256));
        rgb.Schema["Features"].Type.Should().Be(new VectorDataViewType(NumberDataViewType.Single, 768));
        var greyRows = LabelsAndFeatures(grey);
        var rgbRows = LabelsAndFeatures(rgb);
        greyRows.Should().HaveCount(20);
        greyRows.Select(r => r.Label).Should().Equal(rgbRows.Select(r => r.Label));
        greyRows.SelectMany(r => r.Features).Should().OnlyContain(v => v >= 0 && v <= 255);
        greyRows.Select(r => r.Features.Distinct().Count()).Should().OnlyContain(n => n > 5, "photos are not blank");
        for (int i = 0; i < greyRows.Count; i++)
            for (int p = 0; p < 256; p++)
            {
                float[] c = rgbRows[i].Features;
                greyRows[i].Features[p].Should().Be(MathF.Floor((30 * c[3 * p] + 59 * c[3 * p + 1] + 11 * c[3 * p + 2] + 50) / 100));
            }
    }

    [Fact]
    public void ClassListFixesKeysAcrossSplits()
    {
        var classes = Directory.GetDirectories(Validation).Select(Path.GetFileName).Order(StringComparer.Ordinal).Reverse().ToArray();
        var view = AuxRnnDatasets.ListImageFolder(_ml, Validation, classes!, maxImagesPerClass: 1);
        KeyNames(view.Schema["Label"]).Should().Equal(classes);
        var paths = Column<ReadOnlyMemory<char>>(view, "ImagePath").Select(p => Path.GetFileName(Path.GetDirectoryName(p.ToString()))).ToList();
        var labels = Column<uint>(view, "Label");
        for (int i = 0; i < labels.Count; i++)
            paths[i].Should().Be(classes[labels[i] - 1]);

        var act = () => AuxRnnDatasets.ListImageFolder(_ml, Validation, new[] { "dress", "hat" });
        act.Should().Throw<InvalidDataException>().WithMessage("*sub-folder*not among the classes*");
    }

    [Fact]
    public void MissingAndEmptyFoldersAreReported()
    {
        using var temp = new TempFolder();
        var missing = () => AuxRnnDatasets.ListImageFolder(_ml, temp.File("nope"));
        missing.Should().Throw<DirectoryNotFoundException>().WithMessage("*nope*");

        Directory.CreateDirectory(temp.File("cats"));
        File.WriteAllText(Path.Combine(temp.File("cats"), "notes.txt"), "not an image");
        var empty = () => AuxRnnDatasets.LoadImageFolder(_ml, temp.Path, 8, 8);
        empty.Should().Throw<InvalidDataException>().WithMessage("*no class sub-folders with images*");
    }
}
