using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Model;

/// <summary>A request for the state of one row after it has read steps [0, <see cref="Position"/>).</summary>
internal readonly record struct StateRequest(int Row, int Position);

/// <summary>
/// Runs a one-layer LSTM over a batch with fused calls and returns its (h, c) state at arbitrary per-row
/// positions. Calls are split only where some row's state is wanted (or every <c>maxChunk</c> steps), rows leave
/// the batch once their last wanted state is known, and nothing but the running state is kept between calls, so
/// memory does not grow with the number of steps. Works with and without gradient.
/// </summary>
internal static class LstmRunner
{
    /// <param name="lstm">A one-layer, batch-first LSTM.</param>
    /// <param name="encode">Raw input slice (rows, steps[, values]) → (rows, steps, input size).</param>
    /// <param name="raw">Raw input of every row: (N, T) tokens or (N, T, S) values.</param>
    /// <param name="h0">Initial hidden states (N, H), or null for zeros.</param>
    /// <param name="c0">Initial cell states (N, H), or null for zeros.</param>
    /// <param name="hiddenSize">H.</param>
    /// <param name="requests">Wanted states; positions in [0, T].</param>
    /// <param name="maxChunk">Most steps per fused call (bounds the memory of one call's activations).</param>
    /// <returns>(h, c), each (requests.Count, H), in request order.</returns>
    public static (Tensor H, Tensor C) StatesAt(
        LSTM lstm, Func<Tensor, Tensor> encode, Tensor raw, Tensor? h0, Tensor? c0, int hiddenSize,
        IReadOnlyList<StateRequest> requests, int maxChunk)
    {
        int rows = (int)raw.shape[0];
        long steps = raw.shape[1];
        var device = raw.device;
        int q = requests.Count;
        if (q == 0)
            return (zeros(0, hiddenSize, device: device), zeros(0, hiddenSize, device: device));

        var lastWanted = new int[rows];
        Array.Fill(lastWanted, -1);
        foreach (var r in requests)
        {
            if ((uint)r.Row >= (uint)rows || r.Position < 0 || r.Position > steps)
                throw new ArgumentOutOfRangeException(nameof(requests), $"State request {r} is outside the batch ({rows} rows, {steps} steps).");
            lastWanted[r.Row] = Math.Max(lastWanted[r.Row], r.Position);
        }

        var piecesH = new List<Tensor>();
        var piecesC = new List<Tensor>();
        var order = new List<int>(q);

        // Requests at position 0 are the initial states themselves.
        var atZero = Enumerable.Range(0, q).Where(i => requests[i].Position == 0).ToArray();
        if (atZero.Length > 0)
        {
            using var idx = Index(atZero.Select(i => (long)requests[i].Row), device);
            piecesH.Add(h0 is null ? zeros(atZero.Length, hiddenSize, device: device) : h0.index_select(0, idx));
            piecesC.Add(c0 is null ? zeros(atZero.Length, hiddenSize, device: device) : c0.index_select(0, idx));
            order.AddRange(atZero);
        }

        var active = Enumerable.Range(0, rows).Where(r => lastWanted[r] > 0).ToList();
        if (active.Count > 0)
        {
            var byPosition = Enumerable.Range(0, q).Where(i => requests[i].Position > 0)
                .GroupBy(i => requests[i].Position).OrderBy(g => g.Key).ToList();
            var local = new int[rows];
            for (int k = 0; k < active.Count; k++)
                local[active[k]] = k;

            Tensor x, h, c;
            using (var idx = Index(active.Select(r => (long)r), device))
            {
                x = active.Count == rows ? raw.narrow(0, 0, rows) : raw.index_select(0, idx);
                h = h0 is null ? zeros(1, active.Count, hiddenSize, device: device) : h0.index_select(0, idx).unsqueeze(0);
                c = c0 is null ? zeros(1, active.Count, hiddenSize, device: device) : c0.index_select(0, idx).unsqueeze(0);
            }

            int t = 0;
            foreach (var group in byPosition)
            {
                int position = group.Key;
                while (t < position)
                {
                    int count = Math.Min(maxChunk, position - t);
                    using (var scope = NewDisposeScope())
                    {
                        var input = encode(x.narrow(1, t, count));
                        var (output, hn, cn) = lstm.forward(input, (h, c));
                        output.Dispose();
                        h.Dispose();
                        c.Dispose();
                        h = hn.MoveToOuterDisposeScope();
                        c = cn.MoveToOuterDisposeScope();
                    }
                    t += count;
                }

                var ids = group.ToArray();
                using (var idx = Index(ids.Select(i => (long)local[requests[i].Row]), device))
                {
                    piecesH.Add(h[0].index_select(0, idx));
                    piecesC.Add(c[0].index_select(0, idx));
                }
                order.AddRange(ids);

                var keep = active.Where(r => lastWanted[r] > position).ToList();
                if (keep.Count == 0)
                    break;
                if (keep.Count < active.Count)
                {
                    using var keepIdx = Index(keep.Select(r => (long)local[r]), device);
                    var (x2, h2, c2) = (x.index_select(0, keepIdx), h.index_select(1, keepIdx), c.index_select(1, keepIdx));
                    x.Dispose();
                    h.Dispose();
                    c.Dispose();
                    (x, h, c) = (x2, h2, c2);
                    active = keep;
                    for (int k = 0; k < active.Count; k++)
                        local[active[k]] = k;
                }
            }
            x.Dispose();
            h.Dispose();
            c.Dispose();
        }

        // Put the pieces back in request order.
        var inverse = new long[q];
        for (int k = 0; k < q; k++)
            inverse[order[k]] = k;
        using var catH = cat(piecesH, 0);
        using var catC = cat(piecesC, 0);
        foreach (var p in piecesH.Concat(piecesC))
            p.Dispose();
        using var inv = Index(inverse, device);
        return (catH.index_select(0, inv), catC.index_select(0, inv));
    }

    private static Tensor Index(IEnumerable<long> values, Device device) => tensor(values.ToArray(), device: device);
}
