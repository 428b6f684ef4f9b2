using System.Globalization;
using System.Text;
using ScottPlot;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>Collects tables and curves and writes docs/results.md with PNG plots beside it.</summary>
internal sealed class Report
{
    private readonly StringBuilder _body = new();
    private readonly string _folder;

    public Report(string folder, string header)
    {
        _folder = folder;
        Directory.CreateDirectory(folder);
        _body.AppendLine(header).AppendLine();
    }

    public void Section(string title, string? text = null)
    {
        _body.AppendLine($"## {title}").AppendLine();
        if (text != null)
            _body.AppendLine(text).AppendLine();
        Flush();
    }

    public void Table(IReadOnlyList<string> columns, IEnumerable<IReadOnlyList<string>> rows)
    {
        _body.AppendLine("| " + string.Join(" | ", columns) + " |");
        _body.AppendLine("|" + string.Concat(columns.Select(_ => "---|")));
        foreach (var row in rows)
            _body.AppendLine("| " + string.Join(" | ", row) + " |");
        _body.AppendLine();
        Flush();
    }

    public void Text(string text)
    {
        _body.AppendLine(text).AppendLine();
        Flush();
    }

    /// <summary>Plots named (x, y) curves to a PNG and links it.</summary>
    public void Plot(string file, string title, string xLabel, string yLabel, IEnumerable<(string Name, double[] X, double[] Y)> curves)
    {
        var plot = new Plot();
        foreach (var (name, x, y) in curves)
        {
            if (x.Length == 0)
                continue;
            var scatter = plot.Add.Scatter(x, y);
            scatter.LegendText = name;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend();
        plot.SavePng(Path.Combine(_folder, file), 800, 500);
        _body.AppendLine($"![{title}]({file})").AppendLine();
        Flush();
    }

    private void Flush() => File.WriteAllText(Path.Combine(_folder, "results.md"), _body.ToString());

    public static string F(double value, string format = "F1") =>
        double.IsNaN(value) ? "—" : value.ToString(format, CultureInfo.InvariantCulture);
}
