using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Cli.Demo;

/// <summary>
/// The demonstration's synthetic long-range task, generated in code: seven-segment digits drawn with random strokes
/// (jittered ends, thickness, size, position) in white on black into the top rows of a square image; the rows below
/// stay blank. Read pixel by pixel, the class is decided in the first steps and followed by a long blank tail, so a
/// supervised gradient truncated to fewer steps than the tail never reaches the pixels that matter.
/// </summary>
internal static class StrokeDigits
{
    // Seven segments on a unit box: a top, b upper right, c lower right, d bottom, e lower left, f upper left, g middle.
    private static readonly (float X0, float Y0, float X1, float Y1)[] Segments =
    {
        (0, 0, 1, 0), (1, 0, 1, 0.5f), (1, 0.5f, 1, 1), (0, 1, 1, 1), (0, 0.5f, 0, 1), (0, 0, 0, 0.5f), (0, 0.5f, 1, 0.5f),
    };

    private static readonly string[] Digits = { "abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg" };

    public sealed class Row
    {
        public string Label { get; set; } = "";

        public float[] Features { get; set; } = Array.Empty<float>();
    }

    /// <summary>
    /// <paramref name="count"/> images of <paramref name="size"/> × <paramref name="size"/> pixels (values 0..255),
    /// classes balanced; each digit fills rows 1 .. <paramref name="glyphRows"/> − 1, the rest are blank.
    /// </summary>
    public static List<Row> Generate(int count, int size, int glyphRows, int seed)
    {
        if (glyphRows < 5 || glyphRows > size)
            throw new ArgumentOutOfRangeException(nameof(glyphRows), glyphRows, $"must be between 5 and the image size {size}.");
        var rng = new Random(seed);
        var rows = new List<Row>(count);
        for (int i = 0; i < count; i++)
        {
            int digit = i % 10;
            rows.Add(new Row { Label = digit.ToString(), Features = Draw(digit, size, glyphRows, rng) });
        }
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(rows));
        return rows;
    }

    /// <summary>An ML.NET view with a key Label (classes "0".."9") and a known-size Features vector.</summary>
    public static IDataView ToDataView(MLContext ml, List<Row> rows, int size)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size * size);
        var raw = ml.Data.LoadFromEnumerable(rows, schema);
        var digits = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(d => new Row { Label = d.ToString(), Features = new float[size * size] }).ToList(), schema);
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Transforms.SelectColumns("Label").Fit(digits).Transform(digits))
            .Fit(raw).Transform(raw);
    }

    private static float[] Draw(int digit, int size, int glyphRows, Random rng)
    {
        var image = new float[size * size];
        // The glyph's box: 1..glyphRows-1 high, a random width and position.
        int height = glyphRows - 2 - rng.Next(0, Math.Max(1, glyphRows / 6));
        int width = Math.Max(3, (int)(height * (0.5 + 0.2 * rng.NextDouble())));
        int top = 1 + rng.Next(0, glyphRows - 1 - height);
        int left = rng.Next(1, Math.Max(2, size - width - 1));
        float thickness = 0.6f + 0.7f * (float)rng.NextDouble();
        float Jitter() => (float)(rng.NextDouble() - 0.5) * 0.16f;

        foreach (char segment in Digits[digit])
        {
            var (x0, y0, x1, y1) = Segments[segment - 'a'];
            Stroke(image, size, left + (x0 + Jitter()) * width, top + (y0 + Jitter()) * height,
                left + (x1 + Jitter()) * width, top + (y1 + Jitter()) * height, thickness, glyphRows);
        }
        return image;
    }

    /// <summary>Draws a segment in white (255): every pixel at least half covered by the stroke, clipped to the glyph rows.</summary>
    private static void Stroke(float[] image, int size, float x0, float y0, float x1, float y1, float thickness, int glyphRows)
    {
        float dx = x1 - x0, dy = y1 - y0, length2 = Math.Max(1e-6f, dx * dx + dy * dy);
        int xMin = Math.Max(0, (int)MathF.Floor(Math.Min(x0, x1) - thickness - 1)), xMax = Math.Min(size - 1, (int)MathF.Ceiling(Math.Max(x0, x1) + thickness + 1));
        int yMin = Math.Max(0, (int)MathF.Floor(Math.Min(y0, y1) - thickness - 1)), yMax = Math.Min(glyphRows - 1, (int)MathF.Ceiling(Math.Max(y0, y1) + thickness + 1));
        for (int y = yMin; y <= yMax; y++)
        {
            for (int x = xMin; x <= xMax; x++)
            {
                float t = Math.Clamp(((x - x0) * dx + (y - y0) * dy) / length2, 0, 1);
                float px = x0 + t * dx - x, py = y0 + t * dy - y;
                float distance = MathF.Sqrt(px * px + py * py);
                float coverage = Math.Clamp(thickness + 0.5f - distance, 0, 1);
                if (coverage >= 0.5f)
                    image[y * size + x] = 255;
            }
        }
    }

    /// <summary>The image as text, one character per pixel, for the console.</summary>
    public static IEnumerable<string> Render(float[] image, int size)
    {
        const string Shades = " .:-=+*#%@";
        for (int y = 0; y < size; y++)
        {
            var chars = new char[size];
            for (int x = 0; x < size; x++)
                chars[x] = Shades[(int)Math.Min(Shades.Length - 1, image[y * size + x] / 256 * Shades.Length)];
            yield return new string(chars);
        }
    }
}
