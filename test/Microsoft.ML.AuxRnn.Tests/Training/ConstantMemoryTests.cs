using static Microsoft.ML.AuxRnn.Tests.ProcessMemory;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>
/// Peak process memory of one training step as sequences grow. Linux only: it reads the peak resident set size
/// (VmHWM) after resetting it through /proc/self/clear_refs, and returns freed heap pages first (malloc_trim), so
/// each measurement sees what its own step needed.
/// </summary>
public class ConstantMemoryTests
{
    private readonly ITestOutputHelper _output;

    public ConstantMemoryTests(ITestOutputHelper output) => _output = output;

    private static SequenceDataset RandomTokens(int rows, int length)
    {
        var rng = new Random(length);
        var data = SequenceDataset.Discrete(256);
        for (int i = 0; i < rows; i++)
            data.AddTokens(Enumerable.Range(0, length).Select(_ => rng.Next(256)).ToArray(), i % 10);
        return data;
    }

    /// <summary>(peak process RSS during one training step, RSS before it), in MiB.</summary>
    private static (double Peak, double Before) MeasureStep(AuxLstmClassifierOptions options, int length)
    {
        var data = RandomTokens(options.BatchSize, length);
        var shape = NetworkShape.From(options, true, 256, 1, 10);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        MallocTrim(0);
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
        double before = StatusKb("VmRSS") / 1024.0;
        var result = new AuxLstmTrainer(TrainingFixtures.Host(), options, 1).Train(data, null, shape, CPU);
        double peak = StatusKb("VmHWM") / 1024.0;
        result.Network.Dispose();
        return (peak, before);
    }

    private static AuxLstmClassifierOptions PaperSetting(int? truncation) => new()
    {
        AuxiliaryLoss = AuxiliaryLoss.Reconstruct,
        HiddenSize = 128,
        EmbeddingSize = 128,
        TruncationLength = truncation,
        AuxiliaryTruncationLength = truncation,
        SegmentLength = 600,
        SegmentsPerSequence = 1,
        BatchSize = 16,
        Epochs = 1,
    };

    [Fact]
    public void TruncatedTrainingMemoryIsFlatFrom1024To16384StepsWhileFullBpttGrows()
    {
        if (!OperatingSystem.IsLinux())
            return;
        MeasureStep(PaperSetting(300), 1024); // warm-up: libtorch's lazily built kernels and caches

        var short1 = MeasureStep(PaperSetting(300), 1_024);
        var mid1 = MeasureStep(PaperSetting(300), 4_096);
        var long1 = MeasureStep(PaperSetting(300), 16_384);
        var fullShort = MeasureStep(PaperSetting(null), 1_024);
        var fullLong = MeasureStep(PaperSetting(null), 4_096);
        _output.WriteLine($"truncated 300: 1,024 steps peak {short1.Peak:F0} MiB (from {short1.Before:F0}); 4,096 steps peak {mid1.Peak:F0} MiB (from {mid1.Before:F0}); 16,384 steps peak {long1.Peak:F0} MiB (from {long1.Before:F0})");
        _output.WriteLine($"full BPTT: 1,024 steps peak {fullShort.Peak:F0} MiB (from {fullShort.Before:F0}); 4,096 steps peak {fullLong.Peak:F0} MiB (from {fullLong.Before:F0})");

        long1.Peak.Should().BeLessThanOrEqualTo(1.5 * short1.Peak, "the issue's target: peak process memory at 16,384 steps at most 1.5x that at 1,024");
        // What a step adds, between rows long enough that few 600-step segments are clipped at the row's start: at
        // 1,024 steps about half of them are (mean length ≈ 425), and the decoder, padded only to each length group's
        // longest, then costs less than at 16,384 (≈ 590): that difference is the segments', not the sequence's.
        double stepShort = mid1.Peak - mid1.Before, stepLong = long1.Peak - long1.Before;
        stepLong.Should().BeLessThanOrEqualTo(1.25 * stepShort + 16,
            "what a truncated step adds does not grow with the sequence (4x longer here)");
        double fullStepShort = fullShort.Peak - fullShort.Before, fullStepLong = fullLong.Peak - fullLong.Before;
        double fullPerThousand = (fullStepLong - fullStepShort) / 3.072, truncatedPerThousand = Math.Max(0, stepLong - stepShort) / 12.288;
        _output.WriteLine($"growth per 1,000 steps: full BPTT {fullPerThousand:F1} MiB, truncated {truncatedPerThousand:F1} MiB");
        fullPerThousand.Should().BeGreaterThan(30, "full BPTT keeps every step's activations: the measure sees growth");
        truncatedPerThousand.Should().BeLessThan(fullPerThousand / 10);
    }
}
