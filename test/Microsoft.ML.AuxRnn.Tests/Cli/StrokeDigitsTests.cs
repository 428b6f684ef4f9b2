using Microsoft.ML.AuxRnn.Cli.Demo;

namespace Microsoft.ML.AuxRnn.Tests.Cli;

public class StrokeDigitsTests
{
    [Fact]
    public void DigitsAreDrawnInTheTopRowsOnlyAndTheRestIsBlank()
    {
        var rows = StrokeDigits.Generate(200, size: 12, glyphRows: 10, seed: 3);

        rows.Should().HaveCount(200);
        rows.GroupBy(r => r.Label).Should().HaveCount(10).And.OnlyContain(g => g.Count() == 20, "classes are balanced");
        foreach (var row in rows)
        {
            row.Features.Should().HaveCount(144).And.OnlyContain(v => v == 0 || v == 255);
            row.Features.Skip(10 * 12).Should().OnlyContain(v => v == 0, "the last 2 rows (24 steps) are blank");
            row.Features.Count(v => v > 0).Should().BeGreaterThan(4, "every digit has ink");
        }

        // Same seed, same images; a '1' (two right segments) has less ink than an '8' (all seven) on average.
        StrokeDigits.Generate(200, 12, 10, seed: 3).Select(r => r.Features).Should().BeEquivalentTo(rows.Select(r => r.Features), o => o.WithStrictOrdering());
        double Ink(string digit) => rows.Where(r => r.Label == digit).Average(r => r.Features.Count(v => v > 0));
        Ink("1").Should().BeLessThan(Ink("8"));
    }

    [Fact]
    public void DataViewHasKeyLabelsOverTheTenDigitsAndKnownSizeFeatures()
    {
        var ml = new MLContext(seed: 1);
        var rows = StrokeDigits.Generate(30, 12, 10, seed: 1);
        var view = StrokeDigits.ToDataView(ml, rows, 12);
        Datasets.ViewReader.KeyNames(view.Schema["Label"]).Should().Equal("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");
        view.Schema["Features"].Type.Should().Be(new Microsoft.ML.Data.VectorDataViewType(Microsoft.ML.Data.NumberDataViewType.Single, 144));
        var labels = Datasets.ViewReader.LabelsAndFeatures(view);
        labels.Should().HaveCount(30);
        labels.Select(l => (int)l.Label).Should().Equal(rows.Select(r => int.Parse(r.Label) + 1), "digit d is key d + 1");
        labels[0].Features.Should().Equal(rows[0].Features);
    }
}
