using System.Diagnostics;
using static Microsoft.ML.AuxRnn.Tests.ProcessMemory;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// Training memory does not grow with the number of rows: data larger than
/// <see cref="AuxLstmClassifierOptions.ShuffleBufferMegabytes"/> streams through the shuffle buffer. The CI-scale
/// version of docs/results.md's 10,000 vs 1,000,000-row benchmark. Linux only: it reads the peak resident set size
/// (VmHWM) after resetting it through /proc/self/clear_refs.
/// </summary>
public class StreamingMemoryTests
{
    private readonly ITestOutputHelper _output;

    public StreamingMemoryTests(ITestOutputHelper output) => _output = output;

    /// <summary>(peak RSS while <paramref name="run"/> runs, RSS before it, seconds), in MiB.</summary>
    private static (double Peak, double Before, double Seconds) Measure(Action run)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        MallocTrim(0);
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
        double before = StatusKb("VmRSS") / 1024.0;
        var watch = Stopwatch.StartNew();
        run();
        return (StatusKb("VmHWM") / 1024.0, before, watch.Elapsed.TotalSeconds);
    }

    [Fact]
    public void TrainingOnAHundredTimesTheRowsTakesWithin1_2TimesThePeakMemoryOverTheSameMiniBatches()
    {
        if (!OperatingSystem.IsLinux())
            return;
        const int steps = 500, rows = 2_000, batches = 100;
        var options = Synthetic.TinyOptions(o =>
        {
            o.ShuffleBufferMegabytes = 8; // holds the 2,000 rows (3.9 MiB); the 200,000 (391 MiB) stream through it
            o.TruncationLength = 100;
        });
        var small = new GeneratedSequenceDataView(rows, _ => steps);
        var large = new GeneratedSequenceDataView(100 * rows, _ => steps);
        double materialised = 100.0 * rows * steps * sizeof(float) / (1 << 20);

        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => messages.Add(e.Message);
        AuxLstmClassifierTransformer Fit(IDataView data)
        {
            var estimator = ml.Transforms.AuxLstmClassifier(options);
            estimator.MaxBatches = batches;
            return estimator.Fit(data);
        }
        Fit(new GeneratedSequenceDataView(200, _ => steps)); // warm-up: libtorch's lazily built kernels, the LSTM kernel check

        AuxLstmClassifierTransformer? smallModel = null, largeModel = null;
        var smallRun = Measure(() => smallModel = Fit(small));
        messages.Should().NotContain(m => m.Contains("shuffle buffer"), "2,000 rows fit the buffer: they are read into memory once");
        var largeRun = Measure(() => largeModel = Fit(large));
        messages.Should().Contain(m => m.Contains("streams them from the data view through a shuffle buffer"));

        foreach (var (name, m) in new[] { ("2,000 rows", smallRun), ("200,000 rows", largeRun) })
            _output.WriteLine($"{name,-13}: peak RSS {m.Peak:F0} MiB (+{m.Peak - m.Before:F1} MiB over {m.Before:F0}), {m.Seconds:F1} s");

        smallModel!.TrainingHistory.Sum(e => e.Batches).Should().Be(batches);
        largeModel!.TrainingHistory.Sum(e => e.Batches).Should().Be(batches, "both runs train the same number of mini-batches");
        large.SequencesGenerated.Should().BeGreaterThanOrEqualTo(100 * rows, "every row was read (and checked) by the first pass");
        largeRun.Peak.Should().BeLessThanOrEqualTo(1.2 * smallRun.Peak, "peak memory over the same mini-batches stays within 1.2× for 100 times the rows");
        (largeRun.Peak - largeRun.Before).Should().BeLessThan(materialised / 4, $"holding the 200,000 rows would take {materialised:F0} MiB");
    }
}
