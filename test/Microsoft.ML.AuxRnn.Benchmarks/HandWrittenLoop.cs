using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>
/// The reference for Fit's overhead: the same model as AuxLstmClassifier with AuxiliaryLoss None and full BPTT
/// (embedding → LSTM → last state → 2 × 256 feed-forward with DropConnect → softmax), trained by a minimal
/// hand-written TorchSharp loop on tensors already in memory, with RMSProp and gradient clipping.
/// </summary>
internal static class HandWrittenLoop
{
    private sealed class Net : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding _emb;
        private readonly LSTM _lstm;
        private readonly Linear _fc1, _fc2, _out;

        public Net(int vocab, int embed, int hidden, int classes) : base("hand")
        {
            _emb = nn.Embedding(vocab, embed);
            _lstm = nn.LSTM(embed, hidden, batchFirst: true);
            _fc1 = nn.Linear(hidden, 256);
            _fc2 = nn.Linear(256, 256);
            _out = nn.Linear(256, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor tokens)
        {
            var (y, _, _) = _lstm.forward(_emb.forward(tokens));
            var last = y.select(1, -1);
            var h = nn.functional.relu(_fc1.forward(last));
            var mask = bernoulli(full_like(_fc2.weight!, 0.5));
            h = nn.functional.relu(nn.functional.linear(h, _fc2.weight! * mask / 0.5, _fc2.bias));
            return _out.forward(h);
        }
    }

    /// <summary>Sequences per second over <paramref name="tokens"/> (rows × steps, all the same length).</summary>
    public static double SequencesPerSecond(int[][] tokens, int[] labels, int vocab, int classes, int batch, int seed)
    {
        random.manual_seed(seed);
        using var net = new Net(vocab, 128, 128, classes);
        using var optimizer = optim.RMSProp(net.parameters(), lr: 1e-3);
        int steps = tokens[0].Length;
        var watch = Stopwatch.StartNew();
        int seen = 0;
        for (int start = 0; start + batch <= tokens.Length; start += batch)
        {
            using var scope = NewDisposeScope();
            var flat = new long[batch * steps];
            var y = new long[batch];
            for (int i = 0; i < batch; i++)
            {
                for (int t = 0; t < steps; t++)
                    flat[i * steps + t] = tokens[start + i][t];
                y[i] = labels[start + i];
            }
            var loss = nn.functional.cross_entropy(net.forward(tensor(flat, new long[] { batch, steps })), tensor(y));
            optimizer.zero_grad();
            loss.backward();
            nn.utils.clip_grad_norm_(net.parameters(), 1.0);
            optimizer.step();
            seen += batch;
        }
        return seen / watch.Elapsed.TotalSeconds;
    }
}
