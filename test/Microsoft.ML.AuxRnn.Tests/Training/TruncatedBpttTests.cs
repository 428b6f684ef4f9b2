using static Microsoft.ML.AuxRnn.Tests.Model.LstmReference;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>
/// Where the gradients of each loss reach. Every (row, step) of the batch gets its own token, so the gradient of
/// the main network's embedding row for that token is exactly the gradient with respect to that step's input.
/// </summary>
public class TruncatedBpttTests
{
    private static readonly int[] Lengths = { 37, 50, 23, 12 };
    private const int MaxLength = 50;

    private static int TokenOf(int row, int step) => 1 + row * MaxLength + step; // 0 is padding

    private static SequenceBatch UniqueTokenBatch()
    {
        var data = SequenceDataset.Discrete(1 + Lengths.Length * MaxLength);
        for (int row = 0; row < Lengths.Length; row++)
            data.AddTokens(Enumerable.Range(0, Lengths[row]).Select(t => TokenOf(row, t)).ToArray(), row % 3);
        return data.GetBatch(Enumerable.Range(0, Lengths.Length).ToArray());
    }

    private static NetworkShape UniqueTokenShape(AuxiliaryLoss loss) =>
        TrainingFixtures.Shape(loss, vocabulary: 1 + Lengths.Length * MaxLength);

    /// <summary>Per row and step: whether the input gradient there is non-zero (after one backward pass).</summary>
    private static bool[][] InputGradientMask(AuxLstmNetwork network)
    {
        var grad = network.EncoderWeight.grad;
        var norms = grad is null
            ? new float[1 + Lengths.Length * MaxLength]
            : grad.abs().sum(1).data<float>().ToArray();
        norms[0].Should().Be(0, "padding never enters a window");
        return Lengths.Select((length, row) => Enumerable.Range(0, length).Select(t => norms[TokenOf(row, t)] != 0).ToArray()).ToArray();
    }

    private static void ShouldReachExactly(bool[][] reached, Func<int, int, bool> expected, string why)
    {
        for (int row = 0; row < reached.Length; row++)
        {
            for (int t = 0; t < reached[row].Length; t++)
                reached[row][t].Should().Be(expected(row, t), $"row {row} (length {Lengths[row]}), step {t}: {why}");
        }
    }

    private static float GradientNorm(TorchSharp.Modules.Parameter p) => p.grad is null ? 0 : p.grad.abs().sum().item<float>();

    private static AuxLstmNetwork Network(AuxiliaryLoss loss, int seed = 3)
    {
        random.manual_seed(seed);
        var network = new AuxLstmNetwork(UniqueTokenShape(loss));
        network.eval();
        return network;
    }

    [Theory]
    [InlineData(10, 7)]
    [InlineData(10, 1000)]
    [InlineData(1, 4)]
    public void SupervisedGradientReachesTheLastKStepsOfEachRowOnly(int k, int chunk)
    {
        using var scope = NewDisposeScope();
        var network = Network(AuxiliaryLoss.None);
        var batch = UniqueTokenBatch();
        var bptt = new TruncatedBptt(k, 300, chunk);
        var states = bptt.Run(network, batch, network.RawInput(batch, CPU), supervised: true, Array.Empty<AuxSegment>());
        var loss = nn.functional.cross_entropy(network.Classify(states.Final!), tensor(batch.Labels));
        loss.backward();

        ShouldReachExactly(InputGradientMask(network), (row, t) => t >= Lengths[row] - k,
            $"the supervised window is the last {k} steps");
    }

    [Fact]
    public void FullBpttReachesTheFirstStep()
    {
        using var scope = NewDisposeScope();
        var network = Network(AuxiliaryLoss.None);
        var batch = UniqueTokenBatch();
        var states = new TruncatedBptt(null, null).Run(network, batch, network.RawInput(batch, CPU), true, Array.Empty<AuxSegment>());
        nn.functional.cross_entropy(network.Classify(states.Final!), tensor(batch.Labels)).backward();

        ShouldReachExactly(InputGradientMask(network), (_, _) => true, "full BPTT reaches every step");
    }

    [Fact]
    public void ZeroTruncationTrainsTheClassifierOnly()
    {
        using var scope = NewDisposeScope();
        var network = Network(AuxiliaryLoss.None);
        var batch = UniqueTokenBatch();
        var states = new TruncatedBptt(0, 300).Run(network, batch, network.RawInput(batch, CPU), true, Array.Empty<AuxSegment>());
        nn.functional.cross_entropy(network.Classify(states.Final!), tensor(batch.Labels)).backward();

        ShouldReachExactly(InputGradientMask(network), (_, _) => false, "truncation 0 stops the labels at the LSTM");
        network.Lstm.parameters().Select(GradientNorm).Should().OnlyContain(n => n == 0);
        network.ClassifierParameters().Select(GradientNorm).Should().OnlyContain(n => n > 0);
    }

    [Theory]
    [InlineData(AuxiliaryLoss.Reconstruct, 6)]
    [InlineData(AuxiliaryLoss.Predict, 6)]
    [InlineData(AuxiliaryLoss.Reconstruct, 0)]
    [InlineData(AuxiliaryLoss.Predict, 0)]
    public void EachAnchorsLossReachesTheKStepsBeforeItsAnchorOnly(AuxiliaryLoss kind, int k)
    {
        using var scope = NewDisposeScope();
        var network = Network(kind);
        random.manual_seed(5);
        var decoder = new AuxiliaryDecoder(network.Shape);
        var batch = UniqueTokenBatch();
        // Two anchors in row 0 (overlapping windows), one near the start of row 2 (window cut at step 0), one in row 3.
        var segments = kind == AuxiliaryLoss.Reconstruct
            ? new[] { new AuxSegment(0, 30, 20, 10, true), new AuxSegment(0, 34, 24, 10, true), new AuxSegment(2, 4, 0, 4, true), new AuxSegment(3, 12, 4, 8, false) }
            : new[] { new AuxSegment(0, 30, 30, 5, false), new AuxSegment(0, 33, 33, 4, false), new AuxSegment(2, 4, 4, 6, false), new AuxSegment(3, 9, 9, 3, false) };
        var objective = new AuxObjective(network, decoder, new TruncatedBptt(300, k, 5), CPU);
        var losses = objective.Compute(batch, segments, supervised: false, 0, null);
        losses.Supervised.Should().BeNull();
        losses.Auxiliary!.backward();

        // r-LSTM: the k steps before the anchor; p-LSTM: those and the segment's steps the main LSTM reads to predict the next.
        bool InAWindow(int row, int t) => segments.Any(s => s.Row == row && t >= s.Anchor - k
            && t < (kind == AuxiliaryLoss.Predict ? s.End - 1 : s.Anchor));
        ShouldReachExactly(InputGradientMask(network), InAWindow, $"each anchor's window is the {k} steps before it");
        decoder.parameters().Select(GradientNorm).Should().OnlyContain(n => n > 0, "the decoder is trained whatever the truncation");
        network.ClassifierParameters().Select(GradientNorm).Should().OnlyContain(n => n == 0, "the auxiliary loss never touches the classifier");
    }

    [Theory]
    [InlineData(AuxiliaryLoss.Reconstruct)]
    [InlineData(AuxiliaryLoss.Predict)]
    public void WithBothLossesEachReachesItsOwnWindowsAndTheStatesAreAPlainForwardPass(AuxiliaryLoss kind)
    {
        // Both losses from one call, as training computes them: the gradient-free pass to every window's start is
        // shared, yet each loss's gradient reaches exactly its own windows, and the classifier's states are those of
        // a plain forward pass.
        const int k = 10, kAux = 6;
        using var scope = NewDisposeScope();
        var network = Network(kind);
        var batch = UniqueTokenBatch();
        var raw = network.RawInput(batch, CPU);
        var segments = kind == AuxiliaryLoss.Reconstruct
            ? new[] { new AuxSegment(0, 30, 20, 10, true), new AuxSegment(1, 12, 4, 8, true), new AuxSegment(3, 5, 0, 5, true) }
            : new[] { new AuxSegment(0, 8, 8, 5, false), new AuxSegment(1, 20, 20, 10, false), new AuxSegment(3, 2, 2, 6, false) };
        var states = new TruncatedBptt(k, kAux, 4).Run(network, batch, raw, supervised: true, segments, predict: kind == AuxiliaryLoss.Predict);

        Tensor expectedFinal;
        using (no_grad())
        {
            var (full, _, _) = ReferenceForward(network, network.EncodeRaw(raw));
            expectedFinal = AuxLstmNetwork.GatherLast(full, batch.Lengths, 0);
        }
        states.Final!.allclose(expectedFinal, rtol: 1e-4, atol: 1e-5).Should().BeTrue("the classifier reads the rows' final states");

        nn.functional.cross_entropy(network.Classify(states.Final!), tensor(batch.Labels)).backward(retain_graph: true);
        ShouldReachExactly(InputGradientMask(network), (row, t) => t >= Lengths[row] - k, $"the supervised loss reaches the last {k} steps only");

        network.zero_grad();
        var auxiliary = kind == AuxiliaryLoss.Predict ? states.Outputs! : states.AnchorH!;
        auxiliary.sum().backward();
        ShouldReachExactly(InputGradientMask(network), (row, t) => segments.Any(s => s.Row == row && t >= s.Anchor - kAux
            && t < (kind == AuxiliaryLoss.Predict ? s.End - 1 : s.Anchor)), $"the auxiliary loss reaches the {kAux} steps before each anchor (and a p-LSTM segment's steps)");
    }

    [Theory]
    [InlineData(AuxiliaryLoss.Reconstruct)]
    [InlineData(AuxiliaryLoss.Predict)]
    public void DecoderGroupsMatchOnePaddedCall(AuxiliaryLoss kind)
    {
        // Segments of 2 to 24 steps: grouped by length, each decoder call is padded to its group's longest only, and
        // the loss and every gradient are those of the single call padded to 24.
        using var scope = NewDisposeScope();
        var network = Network(kind);
        random.manual_seed(5);
        var decoder = new AuxiliaryDecoder(network.Shape);
        var batch = UniqueTokenBatch();
        var segments = kind == AuxiliaryLoss.Reconstruct
            ? new[] { new AuxSegment(0, 30, 6, 24, true), new AuxSegment(1, 9, 7, 2, true), new AuxSegment(2, 20, 10, 10, false), new AuxSegment(3, 12, 4, 8, true), new AuxSegment(1, 40, 37, 3, false) }
            : new[] { new AuxSegment(0, 10, 10, 24, false), new AuxSegment(1, 9, 9, 2, false), new AuxSegment(2, 10, 10, 10, false), new AuxSegment(3, 2, 2, 8, false), new AuxSegment(1, 40, 40, 3, false) };
        var parameters = network.parameters().Concat(decoder.parameters()).ToList();

        (float Loss, Tensor[] Gradients) Run(int groups)
        {
            foreach (var p in parameters)
                p.grad?.zero_();
            var objective = new AuxObjective(network, decoder, new TruncatedBptt(300, 6, 5), CPU) { DecoderGroups = groups, MinGroupedLength = 0 };
            var loss = objective.Compute(batch, segments, supervised: false, 0, null).Auxiliary!;
            loss.backward();
            return (loss.item<float>(), parameters.Select(p => p.grad is null ? zeros(1) : p.grad.clone()).ToArray());
        }

        var padded = Run(1);
        AuxObjective.LengthGroups(segments, 4).Should().HaveCount(1, "segments this short are decoded in one call");
        AuxObjective.LengthGroups(segments, 4, minGroupedLength: 0).Should().HaveCount(4, "five segments of different lengths make four groups");
        var grouped = Run(4);

        grouped.Loss.Should().BeApproximately(padded.Loss, 1e-5f * Math.Abs(padded.Loss));
        for (int i = 0; i < parameters.Count; i++)
            grouped.Gradients[i].allclose(padded.Gradients[i], rtol: 1e-4, atol: 1e-6).Should().BeTrue($"parameter {i}'s gradient");
        padded.Gradients.Should().Contain(g => g.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void TruncationChangesGradientsNotValues()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var network = Network(AuxiliaryLoss.None);
        var batch = UniqueTokenBatch();
        var raw = network.RawInput(batch, CPU);
        var (full, _, _) = ReferenceForward(network, network.EncodeRaw(raw));
        var expected = AuxLstmNetwork.GatherLast(full, batch.Lengths, 0);

        foreach (var (k, chunk) in new (int?, int)[] { (null, 256), (0, 3), (5, 4), (10, 1000), (49, 7) })
        {
            var states = new TruncatedBptt(k, 300, chunk).Run(network, batch, raw, true, Array.Empty<AuxSegment>());
            states.Final!.allclose(expected, rtol: 1e-4, atol: 1e-5).Should().BeTrue($"truncation {k?.ToString() ?? "none"} with chunks of {chunk}");
        }
    }

    [Fact]
    public void StatesAtArbitraryRowPositionsMatchAPlainForwardPass()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var network = Network(AuxiliaryLoss.None);
        var batch = UniqueTokenBatch();
        var raw = network.RawInput(batch, CPU);
        var rng = new Random(7);
        var requests = Enumerable.Range(0, 25).Select(_ =>
        {
            int row = rng.Next(Lengths.Length);
            return new StateRequest(row, rng.Next(0, Lengths[row] + 1));
        }).Append(new StateRequest(1, 50)).Append(new StateRequest(1, 0)).ToList();

        var (h, c) = network.StatesAt(raw, null, null, requests, maxChunk: 6);

        h.shape.Should().Equal(requests.Count, 8);
        for (int i = 0; i < requests.Count; i++)
        {
            var (row, position) = requests[i];
            Tensor expectedH, expectedC;
            if (position == 0)
            {
                (expectedH, expectedC) = (zeros(8), zeros(8));
            }
            else
            {
                var (_, hn, cn) = ReferenceForward(network, network.EncodeRaw(raw[row].narrow(0, 0, position).unsqueeze(0)));
                (expectedH, expectedC) = (hn[0, 0], cn[0, 0]);
            }
            h[i].allclose(expectedH, rtol: 1e-4, atol: 1e-5).Should().BeTrue($"h of request {requests[i]}");
            c[i].allclose(expectedC, rtol: 1e-4, atol: 1e-5).Should().BeTrue($"c of request {requests[i]}");
        }
    }
}
