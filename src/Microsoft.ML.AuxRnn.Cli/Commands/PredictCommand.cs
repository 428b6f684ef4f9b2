using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

/// <summary><c>auxrnn predict</c>: classify image files (or text files, for a csv model) with a saved model.</summary>
internal static class PredictCommand
{
    public static object Run(CommandLine line, IAnsiConsole console)
    {
        AuxRnnCli.EnsureTorch();
        string modelPath = line.Required("model", "the model zip written by 'auxrnn train'");
        int top = line.Int("top", 1) ?? 1;
        line.Flag("json");
        line.ThrowOnUnused();
        var manifest = ModelManifest.ReadFrom(modelPath);
        var files = Expand(line.Positional, manifest);
        if (files.Count == 0)
            throw new UsageException("Name the files to classify: auxrnn predict --model model.zip FILE… (a folder means the images in it).");

        var ml = new MLContext(seed: 0);
        var model = ml.Model.Load(modelPath, out _);
        var scored = model.Transform(DataSource.PredictionInput(ml, manifest, files));
        string[] classes = DataSource.ClassNames(scored, "PredictedLabel");

        var results = new List<(string File, string Label, (string Name, float P)[] Top)>();
        using (var cursor = scored.GetRowCursor(new[] { scored.Schema["PredictedLabel"], scored.Schema["Score"] }))
        {
            var getLabel = cursor.GetGetter<uint>(scored.Schema["PredictedLabel"]);
            var getScore = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
            uint key = 0;
            var score = default(VBuffer<float>);
            int i = 0;
            while (cursor.MoveNext())
            {
                getLabel(ref key);
                getScore(ref score);
                var probabilities = score.DenseValues().ToArray();
                var best = probabilities.Select((p, c) => (Name: classes[c], P: p)).OrderByDescending(x => x.P).Take(top).ToArray();
                results.Add((files[i++], key == 0 ? "?" : classes[key - 1], best));
            }
        }

        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("file").AddColumn("predicted").AddColumn(new TableColumn("probability").RightAligned());
        if (top > 1)
            table.AddColumn("next");
        foreach (var r in results)
        {
            var cells = new List<string> { Markup.Escape(Path.GetFileName(r.File)), $"[bold]{Markup.Escape(r.Label)}[/]", r.Top[0].P.ToString("P1") };
            if (top > 1)
                cells.Add(Markup.Escape(string.Join(", ", r.Top.Skip(1).Select(t => $"{t.Name} {t.P:P0}"))));
            table.AddRow(cells.ToArray());
        }
        console.Write(table);
        return new
        {
            command = "predict",
            model = Path.GetFullPath(modelPath),
            predictions = results.Select(r => new { file = r.File, label = r.Label, top = r.Top.Select(t => new { label = t.Name, probability = t.P }) }),
        };
    }

    private static List<string> Expand(IEnumerable<string> paths, ModelManifest manifest)
    {
        var files = new List<string>();
        foreach (string path in paths)
        {
            if (Directory.Exists(path))
            {
                var inside = Directory.GetFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => manifest.Format == DataFormat.Csv ? f.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)
                        : AuxRnnDatasets.ImageExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal);
                files.AddRange(inside);
            }
            else
            {
                files.Add(path);
            }
        }
        return files;
    }
}
