using System.Diagnostics;
using static Microsoft.ML.AuxRnn.Tests.ProcessMemory;
using Microsoft.ML.Data;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// Scoring memory does not grow with a row's length beyond the row itself: the main LSTM reads a row in chunks of
/// <c>AuxLstmNetwork.ForwardChunk</c> steps carrying its (h, c) state, and no step's activations are kept. Linux only:
/// it reads the peak resident set size (VmHWM) after resetting it through /proc/self/clear_refs.
/// </summary>
public class LongSequenceScoringMemoryTests
{
    private readonly ITestOutputHelper _output;

    public LongSequenceScoringMemoryTests(ITestOutputHelper output) => _output = output;

    private sealed class ScoreOnly
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    /// <summary>(peak RSS while <paramref name="score"/> runs, RSS before it, seconds), in MiB.</summary>
    private static (double Peak, double Before, double Seconds) Measure(Action score)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        MallocTrim(0);
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
        double before = StatusKb("VmRSS") / 1024.0;
        var watch = Stopwatch.StartNew();
        score();
        return (StatusKb("VmHWM") / 1024.0, before, watch.Elapsed.TotalSeconds);
    }

    private static float[] Row(int steps)
    {
        var rng = new Random(steps);
        var values = new float[steps];
        for (int t = 0; t < steps; t++)
            values[t] = (float)rng.NextDouble();
        return values;
    }

    [Fact]
    public void ScoringAMillionStepRowTakesAboutTheMemoryOfATenThousandStepRow()
    {
        if (!OperatingSystem.IsLinux())
            return;
        const int hidden = 32;
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => { o.HiddenSize = hidden; o.EmbeddingSize = 16; })))
            .Fit(ml.Data.LoadFromEnumerable(Synthetic.Trends(32, 3, 20)));
        var engine = ml.Model.CreatePredictionEngine<SequenceRow, ScoreOnly>(model);
        var shortRow = new SequenceRow { Features = Row(10_000) };
        var longRow = new SequenceRow { Features = Row(1_000_000) };
        engine.Predict(shortRow); // warm-up: libtorch's lazily built kernels, the LSTM kernel check

        float[] shortScore = Array.Empty<float>(), longScore = Array.Empty<float>();
        var engineShort = Measure(() => shortScore = engine.Predict(shortRow).Score);
        var engineLong = Measure(() => longScore = engine.Predict(longRow).Score);
        // Transform's batched path, one row per data view.
        var transformShort = Measure(() => model.Transform(ml.Data.LoadFromEnumerable(new[] { shortRow })).GetColumn<float[]>("Score").Single());
        var transformLong = Measure(() => model.Transform(ml.Data.LoadFromEnumerable(new[] { longRow })).GetColumn<float[]>("Score").Single());

        foreach (var (name, m) in new[] { ("engine 10k", engineShort), ("engine 1M", engineLong), ("transform 10k", transformShort), ("transform 1M", transformLong) })
            _output.WriteLine($"{name,-14}: peak RSS {m.Peak:F0} MiB (+{m.Peak - m.Before:F1} MiB over {m.Before:F0}), {m.Seconds:F2} s");

        longScore.Should().HaveCount(2).And.OnlyContain(p => float.IsFinite(p));
        // Holding the 1M steps' LSTM outputs alone would take 1M × 32 × 4 bytes = 122 MiB (its gates 4 times that).
        double activations = 1_000_000.0 * hidden * 4 / (1 << 20);
        foreach (var (shortRun, longRun) in new[] { (engineShort, engineLong), (transformShort, transformLong) })
        {
            longRun.Peak.Should().BeLessThanOrEqualTo(1.5 * shortRun.Peak, "the process's peak memory scoring 1M steps stays within 1.5× of scoring 10k");
            // What grows is the row itself (3.8 MiB of floats, copied a few times on its way to libtorch), not the activations.
            (longRun.Peak - longRun.Before - (shortRun.Peak - shortRun.Before)).Should().BeLessThan(activations / 2);
        }
    }
}
