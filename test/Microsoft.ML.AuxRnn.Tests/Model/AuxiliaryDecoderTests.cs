using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Tests.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Model;

public class AuxiliaryDecoderTests
{
    private static (AuxiliaryDecoder Decoder, Tensor H, Tensor C, Tensor Segments) Setup(bool discrete)
    {
        random.manual_seed(2);
        var shape = TrainingFixtures.Shape(AuxiliaryLoss.Reconstruct, vocabulary: 7, discrete: discrete, stepSize: 3);
        var decoder = new AuxiliaryDecoder(shape);
        var h = randn(5, 8);
        var c = randn(5, 8);
        var segments = discrete ? randint(0, 7, new long[] { 5, 9 }) : randn(5, 9, 3);
        return (decoder, h, c, segments);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void StepwiseTeacherForcingEqualsTheFusedPass(bool discrete)
    {
        using var scope = NewDisposeScope();
        var (decoder, h, c, segments) = Setup(discrete);
        var fused = decoder.Forward(h, c, segments, 0, null);
        var stepwise = decoder.Forward(h, c, segments, 0, null, stepwise: true);
        fused.shape.Should().Equal(5, 8, discrete ? 7 : 3);
        stepwise.allclose(fused, rtol: 1e-4, atol: 1e-5).Should().BeTrue();
    }

    [Theory]
    [InlineData(false)] // two fused passes (the default)
    [InlineData(true)]  // step by step (ExactScheduledSampling)
    public void ScheduledSamplingFeedsBackTheDecodersOwnPredictions(bool stepwise)
    {
        using var scope = NewDisposeScope();
        var (decoder, h, c, segments) = Setup(discrete: true);
        var teacher = decoder.Forward(h, c, segments, 0, null);
        using var g1 = new Generator(9);
        var sampled = decoder.Forward(h, c, segments, 1.0, g1, stepwise);
        using var g2 = new Generator(9);
        var again = decoder.Forward(h, c, segments, 1.0, g2, stepwise);

        sampled[.., 0].allclose(teacher[.., 0]).Should().BeTrue("the first step is always fed the true first token");
        sampled.allclose(teacher, rtol: 1e-3, atol: 1e-3).Should().BeFalse("later steps read the decoder's own samples");
        again.allclose(sampled).Should().BeTrue("the same generator state samples the same tokens");
    }

    [Fact]
    public void TwoPassSamplingReadsTheTeacherForcedPassesPredictions()
    {
        // Values, always fed back: the second pass must be a teacher-forced pass over [true step 0, then the
        // teacher-forced predictions of steps 1 .. M − 2], nothing else.
        using var scope = NewDisposeScope();
        var (decoder, h, c, segments) = Setup(discrete: false); // (5, 9, 3)
        using (no_grad())
        {
            // Larger weights than the initialisation's, so that a prediction clearly depends on what the decoder read.
            foreach (var p in decoder.parameters())
                p.mul_(4);
        }
        var teacher = decoder.Forward(h, c, segments, 0, null); // predictions of steps 1 .. 8
        var fedSegments = cat(new[] { segments.narrow(1, 0, 1), teacher.narrow(1, 0, 7), segments.narrow(1, 8, 1) }, 1);
        var expected = decoder.Forward(h, c, fedSegments, 0, null);

        var twoPass = decoder.Forward(h, c, segments, 1.0, new Generator(3));
        var stepwise = decoder.Forward(h, c, segments, 1.0, new Generator(3), stepwise: true);

        (teacher - expected).abs().max().item<float>().Should().BeGreaterThan(1e-2f, "feeding predictions back changes what the decoder predicts");
        // Float32 rounding grows along the steps; the step-by-step history differs at a larger order.
        (twoPass - expected).abs().max().item<float>().Should().BeLessThan(1e-3f);
        (stepwise - expected).abs().max().item<float>().Should().BeGreaterThan(1e-2f, "step by step, a prediction comes from the fed-back history instead");
    }

    [Fact]
    public void TheBottomLayerStartsFromTheAnchorState()
    {
        using var scope = NewDisposeScope();
        var (decoder, h, c, segments) = Setup(discrete: true);
        var a = decoder.Forward(h, c, segments, 0, null);
        var b = decoder.Forward(h * 2, c, segments, 0, null);
        a[0].allclose(b[0]).Should().BeFalse();
    }

    [Fact]
    public void TokenLossIsCrossEntropyAveragedPerSegmentAndSummedOverSegmentsPerRow()
    {
        using var scope = NewDisposeScope();
        var (decoder, _, _, _) = Setup(discrete: true);
        var predictions = randn(2, 3, 7);
        var segments = tensor(new long[] { 1, 2, 3, 4, 5, 6, 0, 0 }, new long[] { 2, 4 });
        var lengths = new[] { 4, 2 }; // segment 1 has one real prediction (token 6), the rest is padding
        var loss = decoder.Loss(predictions, segments.narrow(1, 1, 3), lengths.Select(l => l - 1).ToArray(), batchRows: 2).item<float>();

        var logp = nn.functional.log_softmax(predictions, -1);
        double first = -(logp[0, 0, 2].item<float>() + logp[0, 1, 3].item<float>() + logp[0, 2, 4].item<float>()) / 3;
        double second = -logp[1, 0, 6].item<float>();
        loss.Should().BeApproximately((float)((first + second) / 2), 1e-5f);
    }

    [Fact]
    public void ValueLossIsSquaredL2Distance()
    {
        using var scope = NewDisposeScope();
        var (decoder, _, _, _) = Setup(discrete: false);
        var segments = tensor(new float[] { 0, 0, 0, 1, 2, 3, 1, 1, 1 }, new long[] { 1, 3, 3 });
        var predictions = tensor(new float[] { 1, 2, 2, 1, 1, 1 }, new long[] { 1, 2, 3 });
        // step 1: (1,2,2) vs (1,2,3) → 1; step 2: (1,1,1) vs (1,1,1) → 0; mean 0.5 over one row.
        decoder.Loss(predictions, segments.narrow(1, 1, 2), new[] { 2 }, batchRows: 1).item<float>().Should().BeApproximately(0.5f, 1e-6f);
    }

    [Fact]
    public void DecoderIsNotPartOfTheSavedNetwork()
    {
        using var scope = NewDisposeScope();
        var shape = TrainingFixtures.Shape(AuxiliaryLoss.Reconstruct);
        random.manual_seed(4);
        var network = new AuxLstmNetwork(shape);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            network.save(writer);
        stream.Position = 0;
        random.manual_seed(5);
        var loaded = new AuxLstmNetwork(shape);
        using (var reader = new BinaryReader(stream))
            loaded.load(reader);
        TrainingFixtures.SameWeights(TrainingFixtures.Snapshot(network), TrainingFixtures.Snapshot(loaded)).Should().BeTrue();
        network.named_parameters().Select(p => p.name).Should().NotContain(n => n.Contains("decoder", StringComparison.OrdinalIgnoreCase));
    }
}
