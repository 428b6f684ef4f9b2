using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Cli.Demo;

/// <summary>
/// The demonstration's data: a class written once at the start of a long sequence and echoed once after a cue in
/// its first part, then a long quiet stretch. Tokens: 0 begins a row, 1 is the cue, 2.. are the classes, and the
/// last token is the background.
/// </summary>
internal static class RecallSequences
{
    public static readonly string[] Classes = { "A", "B", "C", "D" };

    public static int Levels => 3 + Classes.Length;

    private static int Background => 2 + Classes.Length;

    public sealed class Row
    {
        public string Label { get; set; } = "";

        public float[] Features { get; set; } = Array.Empty<float>();
    }

    /// <param name="count">Rows (classes in turn, shuffled).</param>
    /// <param name="length">Steps per row.</param>
    /// <param name="quiet">Steps at the end that never hold the class (more than the truncation length).</param>
    /// <param name="seed">Random seed.</param>
    public static List<Row> Generate(int count, int length, int quiet, int seed)
    {
        if (quiet < 1 || length < quiet + 8)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"must be at least the quiet stretch ({quiet}) + 8.");
        var rng = new Random(seed);
        var rows = new List<Row>(count);
        for (int i = 0; i < count; i++)
        {
            int label = i % Classes.Length;
            var x = new float[length];
            Array.Fill(x, Background);
            x[0] = 0;
            x[1] = 2 + label;
            int cue = rng.Next(4, length - quiet - 1);
            x[cue] = 1;
            x[cue + 1] = 2 + label;
            rows.Add(new Row { Label = Classes[label], Features = x });
        }
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(rows));
        return rows;
    }

    public static IDataView ToDataView(MLContext ml, List<Row> rows, int length)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, length);
        var raw = ml.Data.LoadFromEnumerable(rows, schema);
        var keys = ml.Data.LoadFromEnumerable(Classes.Select(c => new Row { Label = c, Features = new float[length] }).ToList(), schema);
        return ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Transforms.SelectColumns("Label").Fit(keys).Transform(keys))
            .Fit(raw).Transform(raw);
    }

    /// <summary>A row as text: ^ begins, ! is the cue, letters are the class, · is the background.</summary>
    public static string Render(float[] x, int width)
    {
        var chars = x.Select(v => (int)v switch
        {
            0 => '^',
            1 => '!',
            var t when t >= 2 && t < 2 + Classes.Length => Classes[t - 2][0],
            _ => '·',
        }).ToArray();
        var lines = Enumerable.Range(0, (chars.Length + width - 1) / width)
            .Select(i => new string(chars, i * width, Math.Min(width, chars.Length - i * width)));
        return string.Join("\n", lines);
    }
}
