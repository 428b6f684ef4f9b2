using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;
using static Microsoft.ML.AuxRnn.Tests.Datasets.ViewReader;

namespace Microsoft.ML.AuxRnn.Tests.Datasets;

public class ZhangCsvLoaderTests
{
    private static readonly string TestCsv = TestData.Path("dbpedia", "test.csv");
    private readonly MLContext _ml = new(seed: 1);

    [Fact]
    public void LoadsDbpediaWithNamedKeyLabelsAndTheText()
    {
        var view = AuxRnnDatasets.LoadZhangCsv(_ml, TestCsv);

        var classes = File.ReadAllLines(TestData.Path("dbpedia", "classes.txt")).Where(l => l.Length > 0).ToArray();
        var label = view.Schema["Label"];
        label.Type.Should().BeOfType<KeyDataViewType>().Which.Count.Should().Be(14UL);
        KeyNames(label).Should().Equal(classes);
        view.Schema["Text"].Type.Should().Be(TextDataViewType.Instance);
        view.Schema["Title"].Type.Should().Be(TextDataViewType.Instance);

        var labels = Column<uint>(view, "Label");
        var texts = Column<ReadOnlyMemory<char>>(view, "Text").Select(t => t.ToString()).ToList();
        labels.Should().HaveCount(210);
        labels.Distinct().Should().HaveCount(14);

        // Check against the file itself: class numbers 1..14 become keys 1..14, the text is the third field unquoted.
        var lines = File.ReadLines(TestCsv).Take(3).ToArray();
        for (int i = 0; i < lines.Length; i++)
        {
            int classNumber = int.Parse(lines[i].Split(',')[0].Trim('"'));
            labels[i].Should().Be((uint)classNumber);
            texts[i].Should().NotBeEmpty();
            lines[i].Should().Contain(texts[i][..Math.Min(40, texts[i].Length)]);
        }

        var names = _ml.Transforms.Conversion.MapKeyToValue("Name", "Label").Fit(view).Transform(view);
        Column<ReadOnlyMemory<char>>(names, "Name").First().ToString().Should().Be(classes[labels[0] - 1]);
    }

    [Fact]
    public void ReadsQuotedCommasAndTwoColumnFilesAndMaxRows()
    {
        using var temp = new TempFolder();
        string csv = temp.File("yelp.csv");
        File.WriteAllText(csv, "\"2\",\"Great food, \"\"really\"\" good\"\n\"1\",\"Slow, cold, rude\"\n\"2\",\"ok\"\n");

        var view = AuxRnnDatasets.LoadZhangCsv(_ml, csv, classNames: new[] { "negative", "positive" });
        Column<uint>(view, "Label").Should().Equal(2u, 1u, 2u);
        Column<ReadOnlyMemory<char>>(view, "Text").Select(t => t.ToString()).Should().Equal("Great food, \"really\" good", "Slow, cold, rude", "ok");
        KeyNames(view.Schema["Label"]).Should().Equal("negative", "positive");

        Column<uint>(AuxRnnDatasets.LoadZhangCsv(_ml, TestCsv, maxRows: 25), "Label").Should().HaveCount(25);
    }

    [Fact]
    public void MissingEmptyAndMalformedFilesAreReported()
    {
        using var temp = new TempFolder();
        var missing = () => AuxRnnDatasets.LoadZhangCsv(_ml, temp.File("train.csv"));
        missing.Should().Throw<FileNotFoundException>().WithMessage("*train.csv*");

        string empty = temp.File("empty.csv");
        File.WriteAllText(empty, "\n\n");
        var emptyAct = () => AuxRnnDatasets.LoadZhangCsv(_ml, empty);
        emptyAct.Should().Throw<InvalidDataException>().WithMessage("*empty.csv*empty*");

        string header = temp.File("header.csv");
        File.WriteAllText(header, "class,title,text\n1,a,b\n");
        var headerAct = () => AuxRnnDatasets.LoadZhangCsv(_ml, header);
        headerAct.Should().Throw<InvalidDataException>().WithMessage("*header.csv*row 1*");

        string unknown = temp.File("unknown.csv");
        File.WriteAllText(unknown, "\"1\",\"a\",\"b\"\n\"3\",\"c\",\"d\"\n");
        var unknownAct = () => AuxRnnDatasets.LoadZhangCsv(_ml, unknown, classNames: new[] { "x", "y" });
        unknownAct.Should().Throw<InvalidDataException>().WithMessage("*class 3*2 class names*");
    }
}

public class CharacterFeaturizerTests
{
    private readonly MLContext _ml = new(seed: 1);

    [Fact]
    public void MapsCharactersToAlphabetKeysAndSurvivesSaveAndLoad()
    {
        var view = AuxRnnDatasets.LoadZhangCsv(_ml, TestData.Path("dbpedia", "test.csv"), maxRows: 20);
        var model = AuxRnnDatasets.CharacterFeaturizer(_ml).Fit(view);
        var featurized = model.Transform(view);

        var type = featurized.Schema["Features"].Type.Should().BeOfType<VectorDataViewType>().Subject;
        type.ItemType.Should().BeOfType<KeyDataViewType>().Which.Count.Should().Be((ulong)AuxRnnDatasets.ZhangAlphabet.Length);

        var texts = ViewReader.Column<ReadOnlyMemory<char>>(view, "Text").Select(t => t.ToString()).ToList();
        var keys = KeyRows(featurized);
        keys.Should().HaveCount(20);
        for (int i = 0; i < 3; i++)
        {
            string lower = texts[i].ToLowerInvariant();
            keys[i].Length.Should().Be(lower.Length);
            for (int c = 0; c < lower.Length; c++)
            {
                int expected = AuxRnnDatasets.ZhangAlphabet.IndexOf(lower[c]) + 1; // 0 (missing) outside the alphabet
                if (expected > 0)
                    ((int)keys[i][c]).Should().Be(expected, $"'{lower[c]}' at {c} of document {i}");
            }
        }

        using var stream = new MemoryStream();
        _ml.Model.Save(model, view.Schema, stream);
        stream.Position = 0;
        var loaded = new MLContext(seed: 3).Model.Load(stream, out _);
        KeyRows(loaded.Transform(view)).Should().BeEquivalentTo(keys, o => o.WithStrictOrdering());
    }

    private static List<uint[]> KeyRows(IDataView view)
    {
        var column = view.Schema["Features"];
        var rows = new List<uint[]>();
        using var cursor = view.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<uint>>(column);
        var value = default(VBuffer<uint>);
        while (cursor.MoveNext())
        {
            getter(ref value);
            rows.Add(value.DenseValues().ToArray());
        }
        return rows;
    }
}
