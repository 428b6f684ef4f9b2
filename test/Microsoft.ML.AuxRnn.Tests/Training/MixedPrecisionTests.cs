using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.AuxRnn.Training;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>ComputePrecision: bfloat16 mixed precision with float32 master weights, and what Auto chooses.</summary>
public class MixedPrecisionTests
{
    private static AuxLstmClassifierOptions Options(AuxiliaryLoss loss, ComputePrecision precision) => new()
    {
        AuxiliaryLoss = loss,
        HiddenSize = 16,
        EmbeddingSize = 8,
        ClassifierHiddenSize = 16,
        TruncationLength = 6,
        AuxiliaryTruncationLength = 6,
        SegmentLength = 6,
        Epochs = 1,
        BatchSize = 24,
        LearningRate = 0.01,
        DropConnect = 0,
        Precision = precision,
    };

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }

    [Theory]
    [InlineData(AuxiliaryLoss.None)]
    [InlineData(AuxiliaryLoss.Reconstruct)]
    [InlineData(AuxiliaryLoss.Predict)]
    public void OneMixedPrecisionStepMovesTheFloat32WeightsAsAFloat32StepDoes(AuxiliaryLoss loss)
    {
        var data = TrainingFixtures.FirstTokenTask(24, 10, 20, classes: 3, vocabulary: 7, seed: 1);
        var shape = NetworkShape.From(Options(loss, ComputePrecision.Float32), true, data.Vocabulary, 1, 3);
        var (initial, decoder) = AuxLstmTrainer.InitializeModules(shape, 5);
        decoder?.Dispose();
        var start = TrainingFixtures.Snapshot(initial);
        initial.Dispose();

        float[] Delta(ComputePrecision precision, out TrainingResult result)
        {
            result = new AuxLstmTrainer(TrainingFixtures.Host(), Options(loss, precision), 5) { MaxBatches = 1 }.Train(data, null, shape, CPU);
            result.Network.parameters().Should().OnlyContain(p => p.dtype == ScalarType.Float32, "the master weights stay float32");
            var after = TrainingFixtures.Snapshot(result.Network);
            return after.Zip(start, (x, y) => x.Zip(y, (u, v) => u - v)).SelectMany(d => d).ToArray();
        }

        var full = Delta(ComputePrecision.Float32, out var f32);
        var mixed = Delta(ComputePrecision.BFloat16, out var bf16);
        using (f32.Network)
        using (bf16.Network)
        {
            f32.Epochs.Should().OnlyContain(e => e.Precision == ComputePrecision.Float32);
            bf16.Epochs.Should().OnlyContain(e => e.Precision == ComputePrecision.BFloat16);
        }

        mixed.Should().Contain(d => d != 0, "the bfloat16 copy's gradients reach the float32 weights");
        Cosine(full, mixed).Should().BeGreaterThan(0.9, "the same step, up to bfloat16 rounding of the forward and backward passes");
    }

    [Fact]
    public void TheDecoderOnlyExperimentKeepsTheMainNetworkInFloat32AndStillTrainsIt()
    {
        // The benchmarks' "bfloat16-decoder" variant: only the decoder computes in bfloat16; the float32 main network
        // reads the anchors' float32 states into the bfloat16 decoder, and the cast passes the gradient back.
        var data = TrainingFixtures.FirstTokenTask(24, 10, 20, classes: 3, vocabulary: 7, seed: 1);
        var options = Options(AuxiliaryLoss.Reconstruct, ComputePrecision.BFloat16);
        options.TruncationLength = 0; // the labels train the head only: what moves the LSTM is the decoder's loss
        var shape = NetworkShape.From(options, true, data.Vocabulary, 1, 3);
        var (initial, decoder) = AuxLstmTrainer.InitializeModules(shape, 5);
        decoder?.Dispose();
        var lstmBefore = initial.Lstm.parameters().Select(p => p.data<float>().ToArray()).ToArray();
        initial.Dispose();
        MixedPrecision.KeepMainNetworkInFloat32 = true;
        try
        {
            var result = new AuxLstmTrainer(TrainingFixtures.Host(), options, 5) { MaxBatches = 2 }.Train(data, null, shape, CPU);
            using var network = result.Network;
            var lstmAfter = network.Lstm.parameters().Select(p => p.data<float>().ToArray()).ToArray();
            lstmAfter.Zip(lstmBefore).Should().Contain(pair => !pair.First.SequenceEqual(pair.Second), "the auxiliary loss reaches the float32 LSTM through the cast");
        }
        finally
        {
            MixedPrecision.KeepMainNetworkInFloat32 = false;
        }
    }

    [Fact]
    public void ABFloat16ModelScoresInFloat32AndTheSameAfterReload()
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => log.Add(e.Message);
        var raw = ml.Data.LoadFromEnumerable(Synthetic.Trends(64, 5, 20));
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
        var options = Synthetic.TinyOptions(o => { o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct; o.Epochs = 3; o.Precision = ComputePrecision.BFloat16; });

        using var model = ml.Transforms.AuxLstmClassifier(options).Fit(data);

        model.TrainingHistory.Should().OnlyContain(e => e.Precision == ComputePrecision.BFloat16);
        log.Should().Contain(m => m.Contains("Computing in bfloat16"));
        var scores = model.Transform(data).GetColumn<float[]>("Score").ToList();
        scores.Should().OnlyContain(s => s.All(float.IsFinite));
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        try
        {
            loaded.Transform(data).GetColumn<float[]>("Score").Should().BeEquivalentTo(scores, o => o.WithStrictOrdering(), "saved weights are the float32 masters");
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void AutoChoosesBFloat16ExactlyWhereTheCpuHasABFloat16Unit()
    {
        var flags = OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(' ') ?? Array.Empty<string>()
            : Array.Empty<string>();
        bool fast = flags.Contains("amx_bf16") || flags.Contains("avx512_bf16");

        var (auto, reason) = MixedPrecision.Resolve(ComputePrecision.Auto, CPU);

        auto.Should().Be(fast ? ComputePrecision.BFloat16 : ComputePrecision.Float32, reason);
        reason.Should().StartWith("Auto:");
        MixedPrecision.Resolve(ComputePrecision.Float32, CPU).Precision.Should().Be(ComputePrecision.Float32);
        MixedPrecision.Resolve(ComputePrecision.BFloat16, CPU).Precision.Should().Be(ComputePrecision.BFloat16);
    }
}
