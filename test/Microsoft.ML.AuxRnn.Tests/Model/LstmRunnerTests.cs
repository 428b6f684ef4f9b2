using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Tests.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Model;

/// <summary>
/// States wanted inside a fused call (closer than <see cref="LstmRunner.MinCall"/> steps to its start) have their
/// cell state rebuilt from the call's output: values and gradients must equal those of a plain LSTM run to there.
/// </summary>
public class LstmRunnerTests
{
    private static readonly int[] Lengths = { 40, 33, 21, 9, 40 };

    private static (AuxLstmNetwork Network, Tensor Raw) Setup()
    {
        random.manual_seed(11);
        var network = new AuxLstmNetwork(TrainingFixtures.Shape(AuxiliaryLoss.None, vocabulary: 13));
        var rng = new Random(3);
        var data = SequenceDataset.Discrete(13);
        foreach (int length in Lengths)
            data.AddTokens(Enumerable.Range(0, length).Select(_ => rng.Next(1, 13)).ToArray(), 0);
        var batch = data.GetBatch(Enumerable.Range(0, Lengths.Length).ToArray());
        return (network, network.RawInput(batch, CPU));
    }

    /// <summary>Positions 1..40 apart by less than MinCall, several per row, some rows at their end, one at 0.</summary>
    private static List<StateRequest> Requests(bool someHiddenOnly)
    {
        var rng = new Random(5);
        var requests = new List<StateRequest> { new(0, 0), new(3, 9), new(4, 40), new(4, 40) };
        for (int k = 0; k < 14; k++)
        {
            int row = rng.Next(Lengths.Length);
            requests.Add(new StateRequest(row, rng.Next(1, Lengths[row] + 1)) { HiddenOnly = someHiddenOnly && k % 3 == 0 });
        }
        return requests;
    }

    private static (float[] Weights, float[] Encoder) Gradients(AuxLstmNetwork network)
    {
        var lstm = network.Lstm.parameters().Select(p => p.grad!.data<float>().ToArray()).SelectMany(g => g).ToArray();
        var encoder = network.EncoderWeight.grad!.data<float>().ToArray();
        network.zero_grad();
        return (lstm, encoder);
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(7)]
    public void StatesAndGradientsInsideCallsEqualThoseOfAPlainRun(int maxChunk)
    {
        using var scope = NewDisposeScope();
        var (network, raw) = Setup();
        var requests = Requests(someHiddenOnly: false);
        random.manual_seed(2);
        var weightH = randn(requests.Count, 8);
        var weightC = randn(requests.Count, 8);

        var (h, c) = network.StatesAt(raw, null, null, requests, maxChunk);
        ((h * weightH).sum() + (c * weightC).sum()).backward();
        var runner = Gradients(network);

        Tensor expected = zeros(1);
        var expectedH = new List<Tensor>();
        var expectedC = new List<Tensor>();
        for (int i = 0; i < requests.Count; i++)
        {
            var (row, position) = requests[i];
            if (position == 0)
            {
                expectedH.Add(zeros(8));
                expectedC.Add(zeros(8));
                continue;
            }
            var (_, hn, cn) = network.Lstm.forward(network.EncodeRaw(raw[row].narrow(0, 0, position).unsqueeze(0)));
            expectedH.Add(hn[0, 0]);
            expectedC.Add(cn[0, 0]);
            expected = expected + (hn[0, 0] * weightH[i]).sum() + (cn[0, 0] * weightC[i]).sum();
        }
        expected.backward();
        var plain = Gradients(network);

        h.allclose(stack(expectedH), rtol: 1e-4, atol: 1e-5).Should().BeTrue("h inside a call is the call's output");
        c.allclose(stack(expectedC), rtol: 1e-4, atol: 1e-5).Should().BeTrue("c inside a call is rebuilt exactly");
        tensor(runner.Weights).allclose(tensor(plain.Weights), rtol: 1e-3, atol: 1e-5).Should().BeTrue("LSTM weight gradients match");
        tensor(runner.Encoder).allclose(tensor(plain.Encoder), rtol: 1e-3, atol: 1e-5).Should().BeTrue("input gradients match");
        runner.Encoder.Should().Contain(v => v != 0);
    }

    [Fact]
    public void HiddenOnlyRequestsGetTheirHiddenStateAndAZeroCell()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (network, raw) = Setup();
        var requests = Requests(someHiddenOnly: true);
        var (h, c) = network.StatesAt(raw, null, null, requests, 1000);
        var full = requests.Select(r => r with { HiddenOnly = false }).ToList();
        var (fullH, fullC) = network.StatesAt(raw, null, null, full, 1000);

        h.allclose(fullH, rtol: 1e-5, atol: 1e-6).Should().BeTrue();
        for (int i = 0; i < requests.Count; i++)
        {
            if (requests[i].HiddenOnly)
                c[i].abs().sum().item<float>().Should().Be(0, $"request {i} wants h only");
            else
                c[i].allclose(fullC[i], rtol: 1e-5, atol: 1e-6).Should().BeTrue($"request {i} wants c");
        }
        requests.Should().Contain(r => r.HiddenOnly && r.Position > 0);
    }

    [Fact]
    public void RowsWhoseLastStateComesSoonLeaveTheCallThereInsteadOfRidingToItsEnd()
    {
        // 16 rows want a state at step 2,000 (supervised windows), 16 others only at step 10 (short auxiliary windows):
        // carrying the 16 short rows 1,990 more steps would double the call's work and memory.
        var requests = Enumerable.Range(0, 16).Select(r => new StateRequest(r, 2_000))
            .Concat(Enumerable.Range(16, 16).Select(r => new StateRequest(r, 10))).ToList();
        var lastWanted = requests.Select(r => r.Position).ToArray();
        var pending = Enumerable.Range(0, requests.Count).OrderBy(i => requests[i].Position).ToArray();
        LstmRunner.LeaveEarly(pending, 0, requests, lastWanted, t: 0, end: 2_000, activeRows: 32, LstmRunner.MinCall).Should().Be(10);

        // One row leaving 5 steps before the call's end saves less than a call costs: no cut.
        var few = new List<StateRequest> { new(0, 100), new(1, 100), new(2, 95) };
        var fewPending = new[] { 2, 0, 1 };
        LstmRunner.LeaveEarly(fewPending, 0, few, new[] { 100, 100, 95 }, t: 90, end: 100, activeRows: 3, LstmRunner.MinCall).Should().Be(100);

        // A position inside the call that some row passes on its way further is no reason to cut.
        var passing = new List<StateRequest> { new(0, 5), new(0, 2_000), new(1, 2_000) };
        LstmRunner.LeaveEarly(new[] { 0, 1, 2 }, 0, passing, new[] { 2_000, 2_000 }, t: 0, end: 2_000, activeRows: 2, LstmRunner.MinCall).Should().Be(2_000);
    }
}
