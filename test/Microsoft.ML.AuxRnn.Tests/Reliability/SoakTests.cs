using Microsoft.ML.Data;
using System.Globalization;
using static Microsoft.ML.AuxRnn.Tests.ProcessMemory;
using Microsoft.ML.AuxRnn.Tests.Integration;
using TorchSharp;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// Many training steps and many scored rows do not grow memory: the resident set at the 1,000th step (or 10,000th
/// row) is at most 10 % above the one at the 100th step (1,000th row), and there are no more live native tensors.
/// (Memory that other tests' garbage gives back meanwhile may make it shrink: only growth would be a leak.)
/// </summary>
public class SoakTests
{
    private readonly ITestOutputHelper _output;

    public SoakTests(ITestOutputHelper output) => _output = output;

    private static long ResidentBytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>
    /// (live tensors, resident bytes), read after a full collection and after returning free heap pages to the
    /// system, so that only memory really held counts (not a free block glibc happens to keep).
    /// </summary>
    private static (long Tensors, long Resident) Measure()
    {
        long tensors = torch.Tensor.TotalCount; // before collecting: leaked handles must not be rescued by finalizers
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true); // decommits free GC memory now
        MallocTrim(0);
        return (tensors, ResidentBytes());
    }

    /// <summary>
    /// Rows of 6 steps: few distinct tensor shapes, so that libtorch's caches keyed by shape (oneDNN's primitive cache
    /// holds up to 1,024 compiled kernels) are full by step 100 and what is measured is what each step keeps.
    /// </summary>
    private static (MLContext Ml, IDataView Data) Keyed(int rows, int seed = 1)
    {
        var ml = new MLContext(seed: 1);
        var raw = ml.Data.LoadFromEnumerable(Synthetic.Trends(rows, 6, 6, seed));
        return (ml, ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw));
    }

    [Fact]
    public void AThousandTrainingStepsAndTenThousandScoredRowsDoNotGrowMemory()
    {
        if (!OperatingSystem.IsLinux())
            return;

        // Garbage of earlier tests (tensors waiting for their finalizers) must not count as this test's.
        GC.Collect();
        GC.WaitForPendingFinalizers();

        // 1,000 one-batch epochs of an r-LSTM (decoder, optimizer and DropConnect included), measured from the log.
        var (ml, data) = Keyed(4);
        var atStep = new Dictionary<int, (long Tensors, long Resident)>();
        var epoch = new System.Text.RegularExpressions.Regex(@"Epoch (\d+)/1000 \(");
        ml.Log += (_, e) =>
        {
            if (epoch.Match(e.Message) is { Success: true } m && int.Parse(m.Groups[1].Value) is 100 or 1000)
                atStep[int.Parse(m.Groups[1].Value)] = Measure();
        };
        var options = Synthetic.TinyOptions(o =>
        {
            o.Epochs = 1000;
            o.BatchSize = 4;
            o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct;
            o.SegmentLength = 3;
        });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var model = ml.Transforms.AuxLstmClassifier(options).Fit(data);
        _output.WriteLine($"1,000 steps in {watch.Elapsed.TotalSeconds:F1} s; step 100: {atStep[100]}, step 1,000: {atStep[1000]}");
        model.TrainingHistory.Should().HaveCount(1000).And.OnlyContain(r => r.Batches == 1);
        atStep[1000].Tensors.Should().BeLessThanOrEqualTo(atStep[100].Tensors, "no native tensor outlives its step");
        ((double)atStep[1000].Resident).Should().BeLessThanOrEqualTo(atStep[100].Resident * 1.10, "resident memory does not grow by 10 % from step 100 to step 1,000");

        // 10,000 rows, one prediction engine call each (the per-row path), then 10,000 more through Transform.
        var (scoringMl, rows) = Keyed(100, seed: 2);
        var inputs = Synthetic.Trends(100, 6, 6, seed: 2);
        var engine = scoringMl.Model.CreatePredictionEngine<SequenceRow, ScoreRow>(model);
        var atRow = new Dictionary<int, (long Tensors, long Resident)>();
        watch.Restart();
        for (int i = 1; i <= 10_000; i++)
        {
            engine.Predict(inputs[i % inputs.Count]).Score.Should().HaveCount(2);
            if (i is 1_000 or 10_000)
                atRow[i] = Measure();
        }
        for (int pass = 1; pass <= 100; pass++)
        {
            model.Transform(rows).GetColumn<float[]>("Score").Count().Should().Be(100);
            if (pass is 10 or 100)
                atRow[10_000 + pass * 100] = Measure();
        }
        _output.WriteLine($"20,000 rows in {watch.Elapsed.TotalSeconds:F1} s; engine row 1,000: {atRow[1_000]}, row 10,000: {atRow[10_000]}; " +
                          $"Transform row 1,000: {atRow[11_000]}, row 10,000: {atRow[20_000]}");
        atRow[10_000].Tensors.Should().BeLessThanOrEqualTo(atRow[1_000].Tensors);
        ((double)atRow[10_000].Resident).Should().BeLessThanOrEqualTo(atRow[1_000].Resident * 1.10);
        atRow[20_000].Tensors.Should().BeLessThanOrEqualTo(atRow[11_000].Tensors);
        ((double)atRow[20_000].Resident).Should().BeLessThanOrEqualTo(atRow[11_000].Resident * 1.10);
    }

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
