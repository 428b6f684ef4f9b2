using System.Globalization;
using System.Text;
using SkiaSharp;

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
    /// <remarks>
    /// Drawn with the SkiaSharp 2.88 that ML.NET's ImageAnalytics already loads: ScottPlot 5 needs SkiaSharp 3,
    /// whose removal of <c>SKBitmap.GetPixelSpan</c> breaks ImageAnalytics in the same process.
    /// </remarks>
    public void Plot(string file, string title, string xLabel, string yLabel, IEnumerable<(string Name, double[] X, double[] Y)> curves)
    {
        try
        {
            Draw(file, title, xLabel, yLabel, curves);
            _body.AppendLine($"![{title}]({file})").AppendLine();
        }
        catch (Exception e)
        {
            _body.AppendLine($"(plot '{file}' failed: {e.Message})").AppendLine();
        }
        Flush();
    }

    private void Draw(string file, string title, string xLabel, string yLabel, IEnumerable<(string Name, double[] X, double[] Y)> curves)
    {
        var data = curves.Where(c => c.X.Length > 0).ToList();
        const int Width = 900, Height = 520, Left = 70, Right = 250, Top = 40, Bottom = 60;
        using var bitmap = new SKBitmap(Width, Height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true };
        using var text = new SKPaint { Color = SKColors.Black, TextSize = 14, IsAntialias = true };
        double xMax = Math.Max(1e-9, data.SelectMany(c => c.X).DefaultIfEmpty(1).Max());
        double yMax = Math.Max(1e-9, data.SelectMany(c => c.Y).DefaultIfEmpty(1).Max());
        if (yLabel == "accuracy")
            yMax = 1;
        float X(double x) => (float)(Left + x / xMax * (Width - Left - Right));
        float Y(double y) => (float)(Height - Bottom - y / yMax * (Height - Top - Bottom));
        canvas.DrawLine(Left, Height - Bottom, Width - Right, Height - Bottom, axis);
        canvas.DrawLine(Left, Top, Left, Height - Bottom, axis);
        for (int i = 0; i <= 5; i++)
        {
            canvas.DrawText(F(xMax * i / 5, "F0"), X(xMax * i / 5) - 10, Height - Bottom + 18, text);
            canvas.DrawText(F(yMax * i / 5, "F2"), 20, Y(yMax * i / 5) + 5, text);
        }
        canvas.DrawText(title, Left, 24, text);
        canvas.DrawText(xLabel, (Width - Right) / 2f, Height - 15, text);
        canvas.DrawText(yLabel, 5, Top - 10, text);
        var palette = new[] { SKColors.Crimson, SKColors.RoyalBlue, SKColors.ForestGreen, SKColors.DarkOrange, SKColors.Purple, SKColors.Teal, SKColors.Gray };
        for (int c = 0; c < data.Count; c++)
        {
            using var pen = new SKPaint { Color = palette[c % palette.Length], StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            var (name, xs, ys) = data[c];
            for (int i = 0; i < xs.Length; i++)
            {
                canvas.DrawCircle(X(xs[i]), Y(ys[i]), 3, pen);
                if (i > 0)
                    canvas.DrawLine(X(xs[i - 1]), Y(ys[i - 1]), X(xs[i]), Y(ys[i]), pen);
            }
            canvas.DrawLine(Width - Right + 15, Top + 20 + c * 22, Width - Right + 40, Top + 20 + c * 22, pen);
            canvas.DrawText(name, Width - Right + 45, Top + 25 + c * 22, text);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using (var stream = File.Create(Path.Combine(_folder, file)))
            png.SaveTo(stream);
    }

    private void Flush() => File.WriteAllText(Path.Combine(_folder, "results.md"), _body.ToString());

    public static string F(double value, string format = "F1") =>
        double.IsNaN(value) ? "—" : value.ToString(format, CultureInfo.InvariantCulture);
}
