using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Tests.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Model;

/// <summary>
/// TorchSharp 0.107 passes a Scalar's native handle to libtorch without keeping the Scalar alive, so a temporary Scalar
/// (the implicit conversion of a number) can be finalized while libtorch reads it: libtorch then fails with "Expected
/// false to be true" from Scalar::toFloat, or reads whatever the freed memory holds (a DisposeScope does not prevent
/// it). A DBpedia training run died of it in <see cref="LstmRunner"/>'s cell rebuild, which calls addcmul once per
/// step. The library's per-step and per-batch calls hold their Scalars in variables for the call's duration.
/// With gen-0 collections beside the calls this test does reproduce the failure: in the suite it failed on the rebuild's
/// `Tensor + Tensor` (TorchSharp's operator passes a temporary alpha Scalar) after its addcmul had been fixed. It holds
/// that the rebuild is the fused LSTM's cell state and stays bit-identical while collections and finalizers run during
/// its calls. (Alone, in a small heap, it has passed on the old code too: the failure needs the freed memory reused.)
/// </summary>
public class ScalarLifetimeTests
{
    [Fact]
    public void RebuiltCellStatesEqualTheFusedLstmsAndStayIdenticalWhileCollectionsRun()
    {
        const int Length = 2_000, Rows = 4;
        random.manual_seed(11);
        using var network = new AuxLstmNetwork(TrainingFixtures.Shape(AuxiliaryLoss.None, vocabulary: 13));
        var rng = new Random(3);
        var data = SequenceDataset.Discrete(13);
        for (int row = 0; row < Rows; row++)
            data.AddTokens(Enumerable.Range(0, Length).Select(_ => rng.Next(1, 13)).ToArray(), 0);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int hidden = network.Shape.HiddenSize;
        var input = network.EncodeRaw(network.RawInput(data.GetBatch(Enumerable.Range(0, Rows).ToArray()), CPU));
        var h0 = zeros(1, Rows, hidden);
        var c0 = zeros(1, Rows, hidden);
        var (output, _, cn) = LstmKernelGuard.Forward(network.Lstm, input, (h0, c0));
        var weights = LstmRunner.CellWeights.Of(network.Lstm, hidden);
        int[] rows = Enumerable.Range(0, Rows).ToArray(), lengths = Enumerable.Repeat(Length, Rows).ToArray();
        // The cell state rebuilt over the whole row, one addcmul per step, is the fused LSTM's final one.
        var reference = LstmRunner.RebuildCells(weights, input, output, h0[0], c0[0], rows, lengths, hidden);
        reference.allclose(cn[0], rtol: 1e-4, atol: 1e-5).Should().BeTrue();

        bool stop = false;
        var collector = new Thread(() =>
        {
            // Young-generation collections: the temporary Scalars die young, and a gen-0 collection stays cheap however
            // large the heap that earlier tests in the process left (full collections there let only 3 calls through).
            while (!Volatile.Read(ref stop))
            {
                GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                GC.WaitForPendingFinalizers();
            }
        });
        collector.Start();
        try
        {
            // At least 6 s of calls, and at least 12 calls: in the suite's heap a call can take a second under the collector.
            var watch = System.Diagnostics.Stopwatch.StartNew();
            for (int call = 0; call < 12 || watch.Elapsed < TimeSpan.FromSeconds(6); call++)
            {
                using var inner = NewDisposeScope();
                var rebuilt = LstmRunner.RebuildCells(weights, input, output, h0[0], c0[0], rows, lengths, hidden);
                rebuilt.eq(reference).all().item<bool>().Should().BeTrue("the rebuilt cell states do not change between calls");
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            collector.Join();
        }
    }
}
