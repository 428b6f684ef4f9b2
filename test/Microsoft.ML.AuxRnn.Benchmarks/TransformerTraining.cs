using System.Diagnostics;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>Trains and times <see cref="TransformerBaseline"/> on token rows (benchmarks only).</summary>
internal static class TransformerTraining
{
    public const int Model = 128, Heads = 4, Layers = 2, FeedForward = 512;

    public static TransformerBaseline Create(int vocab, int steps, int classes) =>
        new(vocab, steps, Model, Heads, Layers, FeedForward, classes);

    public static RunResult Train(int[][] train, int[] trainLabels, int[][] test, int[] testLabels, int vocab, int steps, int classes, TimeSpan budget)
    {
        random.manual_seed(1);
        using var net = Create(vocab, steps, classes);
        using var optimizer = optim.Adam(net.parameters(), lr: 1e-3);
        var rng = new Random(1);
        int[] order = Enumerable.Range(0, train.Length).ToArray();
        var watch = Stopwatch.StartNew();
        var xs = new List<double>();
        var ys = new List<double>();
        int epochs = 0, batches = 0;
        double trainSeconds = 0;
        while (watch.Elapsed < budget)
        {
            var epochWatch = Stopwatch.StartNew();
            rng.Shuffle(order);
            net.train();
            for (int start = 0; start + 128 <= order.Length && watch.Elapsed < budget; start += 128)
            {
                using var scope = NewDisposeScope();
                var (x, pad, y) = Batch(train, trainLabels, order.AsSpan(start, 128), steps);
                var loss = nn.functional.cross_entropy(net.forward(x, pad), y);
                optimizer.zero_grad();
                loss.backward();
                nn.utils.clip_grad_norm_(net.parameters(), 1.0);
                optimizer.step();
                batches++;
            }
            trainSeconds += epochWatch.Elapsed.TotalSeconds;
            epochs++;
            xs.Add(trainSeconds);
            ys.Add(Accuracy(net, test, testLabels, steps));
        }
        return new RunResult($"Transformer ({net.ParameterCount:N0} parameters)", ys.LastOrDefault(), epochs, trainSeconds / Math.Max(1, batches),
            Measure.PeakMiB(), watch.Elapsed.TotalSeconds, xs.ToArray(), ys.ToArray()) { };
    }

    public static double SecondsPerStep(int[][] rows, int[] labels, int vocab, int steps, int classes, int batch)
    {
        random.manual_seed(1);
        using var net = Create(vocab, steps, classes);
        using var optimizer = optim.Adam(net.parameters(), lr: 1e-3);
        int[] order = Enumerable.Range(0, rows.Length).ToArray();
        var watch = new Stopwatch();
        int count = 0;
        for (int start = 0; start + batch <= rows.Length; start += batch)
        {
            if (start == batch)
                watch.Start(); // the first step warms up
            using var scope = NewDisposeScope();
            var (x, pad, y) = Batch(rows, labels, order.AsSpan(start, batch), steps);
            var loss = nn.functional.cross_entropy(net.forward(x, pad), y);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            if (start >= batch)
                count++;
        }
        return watch.Elapsed.TotalSeconds / Math.Max(1, count);
    }

    private static double Accuracy(TransformerBaseline net, int[][] rows, int[] labels, int steps)
    {
        using var noGrad = no_grad();
        net.eval();
        int correct = 0;
        int[] order = Enumerable.Range(0, rows.Length).ToArray();
        for (int start = 0; start < rows.Length; start += 256)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(256, rows.Length - start);
            var (x, pad, y) = Batch(rows, labels, order.AsSpan(start, count), steps);
            correct += (int)net.forward(x, pad).argmax(1).eq(y).sum().item<long>();
        }
        return (double)correct / rows.Length;
    }

    private static (Tensor X, Tensor Padding, Tensor Y) Batch(int[][] rows, int[] labels, ReadOnlySpan<int> index, int steps)
    {
        var x = new long[index.Length * steps];
        var pad = new bool[index.Length * steps];
        var y = new long[index.Length];
        for (int i = 0; i < index.Length; i++)
        {
            int[] row = rows[index[i]];
            for (int t = 0; t < steps; t++)
            {
                if (t < row.Length)
                    x[i * steps + t] = row[t];
                else
                    pad[i * steps + t] = true;
            }
            y[i] = labels[index[i]];
        }
        return (tensor(x, new long[] { index.Length, steps }), tensor(pad, new long[] { index.Length, steps }), tensor(y));
    }
}
