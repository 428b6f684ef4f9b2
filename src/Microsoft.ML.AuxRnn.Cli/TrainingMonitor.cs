using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Runtime;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli;

/// <summary>One epoch as the trainer reported it on its log channel.</summary>
internal sealed record EpochLine(int Epoch, int Of, bool Pretraining, double? Loss, double? AuxiliaryLoss, double? Accuracy, double? ValidationAccuracy, double? Seconds);

/// <summary>
/// Follows a Fit through <see cref="MLContext.Log"/>: the estimator's start line ("… 1,234 rows …") and the
/// trainer's per-epoch lines ("Epoch 3/10 (joint): loss 0.1234, auxiliary loss 0.5678, train accuracy 97.1 %,
/// validation accuracy 96.00 %, learning rate 0.001, 12.3 s (45 ms per batch)"; "(pre-training)" epochs too). Messages it cannot read are ignored; the display then shows elapsed time only.
/// </summary>
internal sealed partial class TrainingMonitor : IDisposable
{
    private readonly MLContext _ml;
    private readonly object _gate = new();
    private readonly List<EpochLine> _epochs = new();
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private TimeSpan _lastEpochAt;

    public TrainingMonitor(MLContext ml, int totalEpochs)
    {
        _ml = ml;
        TotalEpochs = totalEpochs;
        _ml.Log += OnLog;
    }

    public int TotalEpochs { get; }

    public long? Rows { get; private set; }

    public string? LastWarning { get; private set; }

    /// <summary>The precision training computes in, as the trainer logged it ("bfloat16 (Auto: the CPU has AMX)"), once known.</summary>
    public string? Precision { get; private set; }

    public TimeSpan Elapsed => _watch.Elapsed;

    public IReadOnlyList<EpochLine> Epochs
    {
        get
        {
            lock (_gate)
                return _epochs.ToArray();
        }
    }

    /// <summary>Epochs done, plus the estimated share of the current one (from the last epoch's duration).</summary>
    public double Progress
    {
        get
        {
            lock (_gate)
            {
                int done = _epochs.Count;
                if (done >= TotalEpochs)
                    return TotalEpochs;
                if (done == 0)
                    return 0;
                var last = _lastEpochAt.TotalSeconds / done;
                double fraction = last > 0 ? (_watch.Elapsed - _lastEpochAt).TotalSeconds / last : 0;
                return done + Math.Min(0.95, fraction);
            }
        }
    }

    public void Dispose() => _ml.Log -= OnLog;

    private void OnLog(object? sender, LoggingEventArgs e)
    {
        string message = e.RawMessage ?? e.Message;
        if (e.Kind == ChannelMessageKind.Warning)
            LastWarning = message;
        if (Precision == null && TryParsePrecision(message) is { } precision)
            Precision = precision;
        if (Rows == null && RowsPattern().Match(message) is { Success: true } rows)
            Rows = long.Parse(rows.Groups[1].Value.Replace(",", ""), CultureInfo.InvariantCulture);
        if (TryParseEpoch(message) is { } epoch)
        {
            lock (_gate)
            {
                _epochs.Add(epoch);
                _lastEpochAt = _watch.Elapsed;
            }
        }
    }

    /// <summary>
    /// Reads the trainer's "Computing in bfloat16 (mixed precision: …) (Auto: the CPU has AVX-512 BF16)." line as
    /// "bfloat16 (Auto: the CPU has AVX-512 BF16)"; null for any other message.
    /// </summary>
    internal static string? TryParsePrecision(string message)
    {
        var m = PrecisionPattern().Match(message);
        return m.Success ? $"{m.Groups[1].Value} ({m.Groups[2].Value})" : null;
    }

    internal static EpochLine? TryParseEpoch(string message)
    {
        var header = EpochPattern().Match(message);
        if (!header.Success)
            return null;
        return new EpochLine(
            int.Parse(header.Groups[2].Value, CultureInfo.InvariantCulture),
            int.Parse(header.Groups[3].Value, CultureInfo.InvariantCulture),
            header.Groups[1].Success || PretrainingPattern().IsMatch(message),
            Number(LossPattern().Match(message)),
            Number(AuxiliaryLossPattern().Match(message)),
            Percent(AccuracyPattern().Match(message)),
            Percent(ValidationPattern().Match(message)),
            Number(SecondsPattern().Match(message)));
    }

    private static double? Number(Match m)
        => m.Success && double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : null;

    private static double? Percent(Match m) => Number(m) is double v ? v / 100 : null;

    [GeneratedRegex(@"(pre-?training\s+)?epoch\s+(\d+)\s*/\s*(\d+)", RegexOptions.IgnoreCase)]
    private static partial Regex EpochPattern();

    [GeneratedRegex(@"pre-?training", RegexOptions.IgnoreCase)]
    private static partial Regex PretrainingPattern();

    [GeneratedRegex(@"(?<!auxiliary )(?:supervised )?loss\s*[:=]?\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?|NaN)", RegexOptions.IgnoreCase)]
    private static partial Regex LossPattern();

    [GeneratedRegex(@"auxiliary loss\s*[:=]?\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)", RegexOptions.IgnoreCase)]
    private static partial Regex AuxiliaryLossPattern();

    [GeneratedRegex(@"(?<!validation )(?:train(?:ing)? )?accuracy\s*[:=]?\s*([\d.]+)\s*%", RegexOptions.IgnoreCase)]
    private static partial Regex AccuracyPattern();

    [GeneratedRegex(@"validation(?: accuracy)?\s*[:=]?\s*([\d.]+)\s*%", RegexOptions.IgnoreCase)]
    private static partial Regex ValidationPattern();

    [GeneratedRegex(@"([\d.]+)\s*s\b(?!.*\d\s*s\b)")]
    private static partial Regex SecondsPattern();

    [GeneratedRegex(@"^Computing in (bfloat16|float32)\b.*\(([^()]*)\)\.?\s*$")]
    private static partial Regex PrecisionPattern();

    [GeneratedRegex(@"([\d,]+) rows")]
    private static partial Regex RowsPattern();
}

/// <summary>Runs a Fit on a worker thread while showing its progress: a live bar on a terminal, a line per epoch otherwise.</summary>
internal static class ProgressDisplay
{
    public static T Run<T>(IAnsiConsole console, MLContext ml, string title, int totalEpochs, Func<T> work, List<EpochLine>? epochsOut = null)
    {
        using var monitor = new TrainingMonitor(ml, totalEpochs);
        var task = Task.Run(work);
        if (console.Profile.Capabilities.Interactive)
        {
            console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                    new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var bar = ctx.AddTask(Markup.Escape(title), maxValue: Math.Max(1, totalEpochs));
                    while (!Finished(task, 200))
                    {
                        bar.Value = monitor.Progress;
                        bar.Description = Markup.Escape(Describe(title, monitor));
                    }
                    bar.Value = bar.MaxValue;
                    bar.Description = Markup.Escape(Describe(title, monitor));
                });
        }
        else
        {
            int shown = 0;
            bool precisionShown = false;
            console.MarkupLine($"[bold]{Markup.Escape(title)}[/]: training {totalEpochs} epoch{(totalEpochs == 1 ? "" : "s")}…");
            while (true)
            {
                bool finished = Finished(task, 250);
                if (!precisionShown && monitor.Precision is { } precision)
                {
                    console.MarkupLine("  computing in " + Markup.Escape(precision));
                    precisionShown = true;
                }
                var epochs = monitor.Epochs;
                for (; shown < epochs.Count; shown++)
                    console.MarkupLine("  " + Markup.Escape(DescribeEpoch(epochs[shown], monitor)));
                if (finished)
                    break;
            }
        }
        epochsOut?.AddRange(monitor.Epochs);
        return task.GetAwaiter().GetResult(); // rethrows the Fit's exception as is
    }

    /// <summary>Waits for the task without throwing (Task.Wait would wrap a failed Fit's exception in an AggregateException).</summary>
    private static bool Finished(Task task, int milliseconds) =>
        task.IsCompleted || ((IAsyncResult)task).AsyncWaitHandle.WaitOne(milliseconds);

    private static string Describe(string title, TrainingMonitor monitor)
    {
        var epochs = monitor.Epochs;
        if (epochs.Count == 0)
            return $"{title}: reading data and training epoch 1/{monitor.TotalEpochs}" + (monitor.Precision is { } p ? $" in {p}" : "");
        return $"{title}: " + DescribeEpoch(epochs[^1], monitor);
    }

    internal static string DescribeEpoch(EpochLine e, TrainingMonitor monitor)
    {
        var parts = new List<string> { $"{(e.Pretraining ? "pre-training " : "")}epoch {e.Epoch}/{e.Of}" };
        if (e.Loss is double loss)
            parts.Add($"loss {loss:F3}");
        if (e.AuxiliaryLoss is double aux)
            parts.Add($"aux {aux:F3}");
        if (e.Accuracy is double acc)
            parts.Add($"acc {acc:P1}");
        if (e.ValidationAccuracy is double val)
            parts.Add($"val {val:P1}");
        if (e.Seconds is double s && s > 0 && monitor.Rows is long rows)
            parts.Add($"{rows / s:F0} seq/s");
        return string.Join("  ", parts);
    }
}
