using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Tests.Integration;
using TorchSharp;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// Fit leaves the host process as it found it: two Fit calls at once on two threads each train the model they train
/// alone, and afterwards torch's thread count, the calling threads' floating-point modes, torch's global generator
/// and glibc's allocator behave as before. CPU tuning can be turned off by option and by environment variable.
/// </summary>
public sealed class ProcessStateTests : IDisposable
{
    public void Dispose() => ModelIntegrityTests.CollectGarbage();

    private readonly ITestOutputHelper _output;

    public ProcessStateTests(ITestOutputHelper output) => _output = output;

    private static readonly IReadOnlyList<SequenceRow> Rows = Synthetic.Trends(48, 3, 20);

    private static AuxLstmClassifierOptions Options(int seed, Action<AuxLstmClassifierOptions> configure) =>
        Synthetic.TinyOptions(o =>
        {
            o.Seed = seed;
            o.Epochs = 2;
            o.AuxiliaryLoss = AuxiliaryLoss.Predict;
            configure(o);
        });

    /// <summary>Fits on the calling thread; returns the saved weights stream (the model, bit for bit).</summary>
    private static byte[] FitWeights(AuxLstmClassifierOptions options, Action<string>? onLog = null)
    {
        var ml = new MLContext(seed: 1);
        if (onLog != null)
            ml.Log += (_, e) => onLog(e.Message);
        var data = ml.Data.LoadFromEnumerable(Rows);
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(options)).Fit(data);
        string path = Path.Combine(Path.GetTempPath(), $"auxrnn-state-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            model.LastTransformer.Dispose();
            return ModelZip.Entries(path).Single(e => e.Key.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal)).Value;
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TwoConcurrentFitsTrainWhatTheyTrainAloneAndLeaveTheProcessAsFound()
    {
        // A also retains freed memory (a process-wide allocator change); B asks for two intra-op threads.
        var a = Options(7, o => o.CpuTuning = CpuTuningMode.RetainFreedMemory);
        var b = Options(8, o => { o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct; o.NumberOfThreads = 2; });
        var before = ProcessState.Capture();
        _output.WriteLine($"before: {before}");
        before.AllocatorTuned.Should().BeFalse();

        var aloneA = FitWeights(a);
        var aloneB = FitWeights(b);
        ProcessState.Capture().Should().Be(before, "one Fit after another leaves the process as found");

        using var start = new Barrier(2);
        var results = new byte[2][];
        var threadBefore = new ProcessState.Snapshot[2];
        var threadAfter = new ProcessState.Snapshot[2];
        var during = new bool?[2];
        bool? mappedDuringA = null;
        var errors = new Exception?[2];
        var workers = new[] { a, b }.Select((options, i) => new Thread(() =>
        {
            try
            {
                threadBefore[i] = ProcessState.Capture();
                start.SignalAndWait();
                results[i] = FitWeights(options, message =>
                {
                    if (message.Contains("Epoch 1/", StringComparison.Ordinal))
                    {
                        during[i] = ProcessState.Capture().FloatingPoint != threadBefore[i].FloatingPoint;
                        if (i == 0)
                            mappedDuringA = ProcessState.LargeBlocksMapped();
                    }
                });
                threadAfter[i] = ProcessState.Capture();
            }
            catch (Exception e)
            {
                errors[i] = e;
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        errors.Should().OnlyContain(e => e == null, string.Join("\n", errors.Select(e => e?.ToString())));
        results[0].Should().Equal(aloneA, "Fit A trains the same model alone and next to another Fit");
        results[1].Should().Equal(aloneB, "Fit B trains the same model alone and next to another Fit");
        during.Should().Equal(new bool?[] { true, true }, "each training thread flushes denormals while it trains");
        mappedDuringA.Should().BeFalse("while A trains, glibc serves large blocks from the heap");
        for (int i = 0; i < 2; i++)
            threadAfter[i].FloatingPoint.Should().Be(threadBefore[i].FloatingPoint, $"thread {i}'s floating-point modes are restored");
        ProcessState.Active.Should().Be(0);
        var after = ProcessState.Capture();
        _output.WriteLine($"after: {after}");
        after.Should().Be(before, "threads, floating-point modes, global generator and allocator are as before");
    }

    [Fact]
    public void CpuTuningIsOffByOptionOrByEnvironmentVariable()
    {
        string? Modes(AuxLstmClassifierOptions options)
        {
            string? seen = null;
            FitWeights(options, message =>
            {
                if (message.Contains("Epoch 1/", StringComparison.Ordinal))
                    seen = ProcessState.Capture().FloatingPoint;
            });
            return seen;
        }

        string outside = ProcessState.Capture().FloatingPoint;
        Modes(Options(3, _ => { })).Should().NotBe(outside, "by default denormals are flushed while training");
        Modes(Options(3, o => o.CpuTuning = CpuTuningMode.Off)).Should().Be(outside, "CpuTuning = Off changes nothing");

        Environment.SetEnvironmentVariable(ProcessState.TuningVariable, "off");
        try
        {
            Modes(Options(3, _ => { })).Should().Be(outside, $"{ProcessState.TuningVariable}=off changes nothing");
        }
        finally
        {
            Environment.SetEnvironmentVariable(ProcessState.TuningVariable, null);
        }
        ProcessState.Capture().FloatingPoint.Should().Be(outside);
    }

    [Fact]
    public void FitDoesNotMoveTheCallersGlobalGenerator()
    {
        torch.random.manual_seed(123);
        var expected = torch.rand(4).data<float>().ToArray();

        torch.random.manual_seed(123);
        FitWeights(Options(5, _ => { }));
        torch.rand(4).data<float>().ToArray().Should().Equal(expected, "Fit draws its initial weights apart from the caller's stream");
    }
}
