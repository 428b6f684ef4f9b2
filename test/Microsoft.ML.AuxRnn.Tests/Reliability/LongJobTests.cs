using System.Reflection;
using Microsoft.ML.AuxRnn.Tests.Integration;
using TorchSharp;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>Cancellation and divergence of a long Fit, through the public estimator.</summary>
public class LongJobTests
{
    private static (MLContext Ml, IDataView Data) Keyed(int rows = 64)
    {
        var ml = new MLContext(seed: 1);
        var raw = ml.Data.LoadFromEnumerable(Synthetic.Trends(rows, 5, 20));
        return (ml, ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw));
    }

    private static AuxLstmClassifierOptions Options(int epochs) => Synthetic.TinyOptions(o =>
    {
        o.Epochs = epochs;
        o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct;
        o.BatchSize = 8;
        o.ValidationSet = null;
    });

    /// <summary>MLContext.CancelExecution() is internal in ML.NET 5 (AutoML and the experiment runners call it).</summary>
    private static void CancelExecution(MLContext ml) =>
        typeof(MLContext).GetMethod("CancelExecution", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)!.Invoke(ml, null);

    /// <summary>Live native tensor handles (nothing collected: only what was disposed deterministically is gone).</summary>
    private static long LiveTensors() => torch.Tensor.TotalCount;

    /// <summary>
    /// Live tensor handles once earlier tests' undisposed tensors are finalized, so that a collection during the
    /// measured Fit cannot lower its count (CI once measured a residue of −2 that way, and failed the test).
    /// </summary>
    private static long SettledTensors()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return torch.Tensor.TotalCount;
    }

    /// <summary>
    /// Live tensors a completed Fit leaves once its transformer is disposed. Not memory: TorchSharp 0.107 counts two
    /// handles per nn.Linear that it never counts down (40 disposed 4096×4096 layers: +80 handles, +7 MiB resident),
    /// so the network's 4 and the decoder's 3 layers leave 14.
    /// </summary>
    private static long CompleteRunResidue()
    {
        var (ml, data) = Keyed();
        long before = SettledTensors();
        ml.Transforms.AuxLstmClassifier(Options(1)).Fit(data).Dispose();
        return LiveTensors() - before;
    }

    [Fact]
    public void CancellingFromTheLogStopsFitAtTheNextBatchAndFreesItsTensors()
    {
        long residue = CompleteRunResidue();
        var (ml, data) = Keyed();
        int epochsLogged = 0;
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("Epoch ") && e.Message.Contains("/20 ("))
            {
                epochsLogged++;
                CancelExecution(ml);
            }
        };
        var estimator = ml.Transforms.AuxLstmClassifier(Options(20));
        long before = SettledTensors();

        estimator.Invoking(e => e.Fit(data)).Should().Throw<OperationCanceledException>();

        epochsLogged.Should().Be(1, "training stops at the first batch after the cancellation");
        (LiveTensors() - before).Should().BeLessThanOrEqualTo(residue, "the network, decoder, optimizer state and batch tensors are all disposed");
    }

    [Fact]
    public void CancellingFromAnotherThreadStopsFitAndFreesItsTensors()
    {
        long residue = CompleteRunResidue();
        var (ml, data) = Keyed();
        using var firstEpoch = new ManualResetEventSlim();
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("Epoch 1/"))
                firstEpoch.Set();
        };
        var estimator = ml.Transforms.AuxLstmClassifier(Options(1000));
        long before = SettledTensors();

        var fit = Task.Factory.StartNew(() => estimator.Fit(data), TaskCreationOptions.LongRunning);
        firstEpoch.Wait(TimeSpan.FromMinutes(2)).Should().BeTrue("the first epoch is logged");
        var canceller = new Thread(() => CancelExecution(ml));
        canceller.Start();
        canceller.Join();
        var watch = System.Diagnostics.Stopwatch.StartNew();

        fit.Invoking(t => t.Wait(TimeSpan.FromMinutes(2))).Should().Throw<AggregateException>()
            .WithInnerException<OperationCanceledException>();
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "Fit stops within a batch, not after its 1,000 epochs");
        (LiveTensors() - before).Should().BeLessThanOrEqualTo(residue);
    }

    [Fact]
    public void CancellingTheOptionsTokenStopsFitInAPipelineAtTheNextBatch()
    {
        var ml = new MLContext(seed: 1);
        var raw = ml.Data.LoadFromEnumerable(Synthetic.Trends(64, 5, 20));
        using var cancellation = new CancellationTokenSource();
        int epochsLogged = 0;
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("Epoch ") && e.Message.Contains("/20 ("))
            {
                epochsLogged++;
                cancellation.Cancel();
            }
        };
        var options = Options(20);
        options.CancellationToken = cancellation.Token;
        // The public way: the token travels in the options, so it works inside a pipeline (and CrossValidate).
        // (It stops where MLContext.CancelExecution does, so the tests above cover the freeing of native memory.)
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.AuxLstm(options));
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var act = () => pipeline.Fit(raw);

        act.Should().Throw<OperationCanceledException>().Which.CancellationToken.Should().Be(cancellation.Token);
        epochsLogged.Should().Be(1, "training stops at the first batch after the cancellation");
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "not after 20 epochs");

        // The context and the estimator's options are not poisoned: a fresh token trains to the end.
        options.CancellationToken = CancellationToken.None;
        options.Epochs = 1;
        using var model = ml.MulticlassClassification.Trainers.AuxLstm(options).Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw));
        model.TrainingHistory.Should().HaveCount(1);
    }

    [Fact]
    public void AnAlreadyCancelledTokenStopsFitBeforeTraining()
    {
        var (ml, data) = Keyed(16);
        var log = new List<string>();
        ml.Log += (_, e) => log.Add(e.Message);
        var options = Options(5);
        options.CancellationToken = new CancellationToken(canceled: true);

        var act = () => ml.MulticlassClassification.Trainers.AuxLstm(options).Fit(data);

        act.Should().Throw<OperationCanceledException>();
        log.Should().NotContain(m => m.Contains("Epoch "), "no epoch starts");
        ml.MulticlassClassification.Trainers.AuxLstm(Options(1)).Fit(data).Dispose(); // the context is still usable
    }

    /// <summary>Not readonly, so the JIT cannot fold comparisons with it: they run on the thread's SSE unit.</summary>
    private static double _smallestDouble = double.Epsilon;

    [Fact]
    public void FitLeavesTheCallersFloatingPointModeAsItWas()
    {
        // Training flushes denormals to zero for speed; the caller's thread must get IEEE arithmetic back.
        (_smallestDouble > 0).Should().BeTrue();
        var (ml, data) = Keyed(16);
        ml.Transforms.AuxLstmClassifier(Options(1)).Fit(data).Dispose();
        (_smallestDouble > 0).Should().BeTrue("a completed Fit restores the thread's floating-point environment");

        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("Epoch 1/"))
                CancelExecution(ml);
        };
        ml.Invoking(m => m.Transforms.AuxLstmClassifier(Options(3)).Fit(data)).Should().Throw<OperationCanceledException>();
        (_smallestDouble > 0).Should().BeTrue("so does a cancelled one");
    }

    [Fact]
    public void AnAbsurdLearningRateStopsFitNamingTheEpochAndBatch()
    {
        var (ml, data) = Keyed();
        var estimator = ml.Transforms.AuxLstmClassifier(Options(3).With(o => o.LearningRate = 1e30));

        estimator.Invoking(e => e.Fit(data)).Should().Throw<InvalidOperationException>()
            .WithMessage("*diverged in epoch 1, batch *LearningRate*");
    }

    [Fact]
    public void AnAbsurdLearningRateWithoutClippingStopsFitToo()
    {
        var (ml, data) = Keyed();
        var estimator = ml.Transforms.AuxLstmClassifier(Options(3).With(o => { o.LearningRate = 1e30; o.GradientClipNorm = 0; o.AuxiliaryLoss = AuxiliaryLoss.None; }));

        estimator.Invoking(e => e.Fit(data)).Should().Throw<InvalidOperationException>()
            .WithMessage("*diverged in epoch *, batch *");
    }

    [Fact]
    public void WeightsThatTheLastUpdateMadeInfiniteStopFitToo()
    {
        // One batch, no clipping: RMSProp's first step moves weights by ±10·1e38 = ±∞, and no later loss sees it.
        var (ml, data) = Keyed(16);
        var estimator = ml.Transforms.AuxLstmClassifier(Options(1).With(o =>
        {
            o.BatchSize = 16;
            o.LearningRate = 1e38;
            o.GradientClipNorm = 0;
            o.AuxiliaryLoss = AuxiliaryLoss.None;
        }));

        estimator.Invoking(e => e.Fit(data)).Should().Throw<InvalidOperationException>()
            .WithMessage("*diverged in epoch 1, batch 1*NaN or infinite*LearningRate*");
    }
}

internal static class OptionsExtensions
{
    public static AuxLstmClassifierOptions With(this AuxLstmClassifierOptions options, Action<AuxLstmClassifierOptions> change)
    {
        change(options);
        return options;
    }
}
