using Microsoft.ML.Data;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli;

/// <summary>Test-set figures: accuracy, per-class precision and recall, the confusion matrix.</summary>
internal sealed record EvaluationResult(
    long Rows, double Accuracy, double MacroAccuracy, double LogLoss, string[] Classes, long[] Support,
    double[] Precision, double[] Recall, long[][] Confusion)
{
    /// <summary>Scores <paramref name="data"/> with <paramref name="model"/> and evaluates it against its Label column.</summary>
    public static EvaluationResult Compute(MLContext ml, ITransformer model, IDataView data)
    {
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored, "Label", "Score", "PredictedLabel");
        string[] classes = DataSource.ClassNames(scored);
        var counts = metrics.ConfusionMatrix.Counts;
        int k = counts.Count;
        var confusion = new long[k][];
        for (int i = 0; i < k; i++)
            confusion[i] = counts[i].Select(c => (long)Math.Round(c)).ToArray();
        long[] support = confusion.Select(r => r.Sum()).ToArray();
        return new EvaluationResult(support.Sum(), metrics.MicroAccuracy, metrics.MacroAccuracy, metrics.LogLoss,
            classes.Length == k ? classes : Enumerable.Range(0, k).Select(i => i.ToString()).ToArray(), support,
            metrics.ConfusionMatrix.PerClassPrecision.ToArray(), metrics.ConfusionMatrix.PerClassRecall.ToArray(), confusion);
    }

    public object ToJson() => new
    {
        rows = Rows,
        accuracy = Accuracy,
        macroAccuracy = MacroAccuracy,
        logLoss = double.IsFinite(LogLoss) ? LogLoss : (double?)null,
        classes = Classes.Select((c, i) => new { name = c, count = Support[i], precision = Precision[i], recall = Recall[i] }),
        confusionMatrix = Confusion,
    };

    public void Render(IAnsiConsole console, string title)
    {
        console.Write(new Rule($"[bold]{Markup.Escape(title)}[/]").LeftJustified());
        console.MarkupLine($"Accuracy [bold]{Accuracy:P2}[/] on {Rows:N0} rows (macro-average {MacroAccuracy:P2}, log-loss {LogLoss:F3}; chance {1.0 / Classes.Length:P1})");

        var perClass = new Table().Border(TableBorder.Rounded).Title("Per class");
        perClass.AddColumn("class").AddColumn(new TableColumn("rows").RightAligned())
            .AddColumn(new TableColumn("precision").RightAligned()).AddColumn(new TableColumn("recall").RightAligned());
        for (int i = 0; i < Classes.Length; i++)
            perClass.AddRow(Markup.Escape(Classes[i]), Support[i].ToString("N0"), Precision[i].ToString("P1"), Recall[i].ToString("P1"));
        console.Write(perClass);

        var matrix = new Table().Border(TableBorder.Simple).Title("Confusion matrix (rows: true class, columns: predicted)");
        matrix.AddColumn("");
        for (int j = 0; j < Classes.Length; j++)
            matrix.AddColumn(new TableColumn(Markup.Escape(Abbreviate(Classes[j]))).RightAligned());
        for (int i = 0; i < Classes.Length; i++)
        {
            var cells = new List<string> { Markup.Escape(Abbreviate(Classes[i])) };
            for (int j = 0; j < Classes.Length; j++)
                cells.Add(Confusion[i][j] == 0 ? "[grey]·[/]" : i == j ? $"[green]{Confusion[i][j]}[/]" : Confusion[i][j].ToString());
            matrix.AddRow(cells.ToArray());
        }
        console.Write(matrix);
    }

    private static string Abbreviate(string name) => name.Length <= 8 ? name : name[..7] + "…";
}
