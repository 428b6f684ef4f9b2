using System.Globalization;
using ScottPlot;

// Usage: dotnet run --project test/Microsoft.ML.AuxRnn.Plots -c Release -- OUT_PREFIX "TITLE" NAME=curve.csv [NAME=curve.csv ...]
// Writes OUT_PREFIX-epochs.png (test accuracy against epochs) and OUT_PREFIX-time.png (against cumulative training
// minutes), one curve per model, legend inside the plot. The csv files are the benchmark's curve-DATA-VARIANT.csv.
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: OUT_PREFIX TITLE NAME=curve.csv [NAME=curve.csv ...]");
    return 2;
}

string prefix = args[0];
string title = args[1];
var curves = args.Skip(2).Select(a =>
{
    int eq = a.IndexOf('=');
    if (eq <= 0)
        throw new ArgumentException($"'{a}' is not NAME=file.csv");
    return (Name: a[..eq], Rows: Curve.Read(a[(eq + 1)..]));
}).ToList();

Draw(prefix + "-epochs.png", "epochs (joint training)", r => r.Epoch);
Draw(prefix + "-time.png", "training time (minutes, 2 CPU threads)", r => r.CumulativeMinutes);
return 0;

void Draw(string path, string xLabel, Func<Curve, double> x)
{
    var plot = new Plot();
    foreach (var (name, rows) in curves)
    {
        var points = rows.Where(r => !r.Pretraining && double.IsFinite(r.TestAccuracy)).ToList();
        if (points.Count == 0)
            continue;
        var line = plot.Add.Scatter(points.Select(x).ToArray(), points.Select(r => 100 * r.TestAccuracy).ToArray());
        line.LegendText = name;
        line.LineWidth = 2;
        line.MarkerSize = 7;
    }
    plot.Title(title);
    plot.XLabel(xLabel);
    plot.YLabel("test accuracy (%)");
    plot.Axes.SetLimitsY(0, 100);
    plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(10);
    double maxX = curves.SelectMany(c => c.Rows).Select(x).DefaultIfEmpty(1).Max();
    plot.Axes.SetLimitsX(0, Math.Max(1, Math.Ceiling(maxX * 1.05)));
    if (xLabel.StartsWith("epochs", StringComparison.Ordinal))
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);
    plot.ShowLegend(Alignment.LowerRight); // accuracy curves rise to the right: the lower right stays empty
    plot.SavePng(path, 800, 500);
    Console.WriteLine($"wrote {path}");
}

internal sealed record Curve(int Epoch, bool Pretraining, double TestAccuracy, double CumulativeMinutes)
{
    public static List<Curve> Read(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        int Col(string name) => Array.IndexOf(header, name) is int i and >= 0 ? i : throw new InvalidDataException($"{path}: no column '{name}'");
        int epoch = Col("epoch"), pre = Col("pretraining"), acc = Col("test_accuracy"), minutes = Col("cumulative_minutes");
        return lines.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).Select(f => new Curve(
            int.Parse(f[epoch], CultureInfo.InvariantCulture), f[pre] == "1",
            double.Parse(f[acc], CultureInfo.InvariantCulture), double.Parse(f[minutes], CultureInfo.InvariantCulture))).ToList();
    }
}
