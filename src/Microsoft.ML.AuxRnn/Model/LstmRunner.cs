using Microsoft.ML.AuxRnn.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Model;

/// <summary>A request for the state of one row after it has read steps [0, <see cref="Position"/>).</summary>
internal readonly record struct StateRequest(int Row, int Position)
{
    /// <summary>Only the hidden state is wanted: the request's cell-state row is left at zero and costs nothing.</summary>
    public bool HiddenOnly { get; init; }
}

/// <summary>
/// Runs a one-layer LSTM over a batch with fused calls and returns its (h, c) state at arbitrary per-row
/// positions. Rows leave the batch once their last wanted state is known, and nothing but the running state is kept
/// between calls, so memory does not grow with the number of steps. Works with and without gradient.
/// </summary>
/// <remarks>
/// A fused call returns h at every step but c only at its end, and each call has a fixed cost (oneDNN's LSTM: about
/// 0.2 ms without gradient and 0.5 ms with it, at 128 rows × 128 cells), which added up when rows want states at many
/// different positions (an anchor per row, rows of different lengths). So a call is cut only at a wanted position at
/// least <see cref="MinCall"/> steps after its start (or after <c>maxChunk</c> steps). A state wanted inside a call takes
/// h from the call's output and rebuilds c from the call's initial c with the cell recurrence c ← f ⊙ c + i ⊙ g, whose
/// gates are recomputed from the call's input and output h in one batched product: an identity of the LSTM, so values
/// and gradients are those of a call cut there (to rounding), and gradient reaches exactly the steps the state depends
/// on. Measured (pixel MNIST, batch 128, H 128, one thread): p-LSTM's gradient windows 0.469 → 0.428 s per step;
/// final states of 128 rows of 50..782 steps 0.144 → 0.123 s.
/// </remarks>
internal static class LstmRunner
{
    /// <summary>Fewest steps of a call that is cut at a wanted position; nearer positions are served from inside the call.</summary>
    internal const int MinCall = 16;

    /// <param name="lstm">A one-layer, batch-first LSTM.</param>
    /// <param name="encode">Raw input slice (rows, steps[, values]) → (rows, steps, input size).</param>
    /// <param name="raw">Raw input of every row: (N, T) tokens or (N, T, S) values.</param>
    /// <param name="h0">Initial hidden states (N, H), or null for zeros.</param>
    /// <param name="c0">Initial cell states (N, H), or null for zeros.</param>
    /// <param name="hiddenSize">H.</param>
    /// <param name="requests">Wanted states; positions in [0, T].</param>
    /// <param name="maxChunk">Most steps per fused call (bounds the memory of one call's activations).</param>
    /// <returns>(h, c), each (requests.Count, H), in request order; c rows of <see cref="StateRequest.HiddenOnly"/> requests are zero.</returns>
    public static (Tensor H, Tensor C) StatesAt(
        LSTM lstm, Func<Tensor, Tensor> encode, Tensor raw, Tensor? h0, Tensor? c0, int hiddenSize,
        IReadOnlyList<StateRequest> requests, int maxChunk)
    {
        if (maxChunk < 1)
            throw new ArgumentOutOfRangeException(nameof(maxChunk));
        int rows = (int)raw.shape[0];
        long steps = raw.shape[1];
        var device = raw.device;
        var dtype = lstm.parameters().First().dtype; // states in the layer's precision (float32, or bfloat16 in mixed precision)
        int q = requests.Count;
        if (q == 0)
            return (zeros(0, hiddenSize, dtype: dtype, device: device), zeros(0, hiddenSize, dtype: dtype, device: device));

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
            piecesH.Add(h0 is null ? zeros(atZero.Length, hiddenSize, dtype: dtype, device: device) : h0.index_select(0, idx));
            piecesC.Add(Cells(atZero, requests, wanted =>
            {
                if (c0 is null)
                    return zeros(wanted.Length, hiddenSize, dtype: dtype, device: device);
                using var rowIdx = Index(wanted.Select(i => (long)requests[i].Row), device);
                return c0.index_select(0, rowIdx);
            }, hiddenSize, dtype, device));
            order.AddRange(atZero);
        }

        var active = Enumerable.Range(0, rows).Where(r => lastWanted[r] > 0).ToList();
        if (active.Count > 0)
        {
            int minCall = Math.Min(maxChunk, MinCall);
            var pending = Enumerable.Range(0, q).Where(i => requests[i].Position > 0).OrderBy(i => requests[i].Position).ToArray();
            var local = new int[rows];
            for (int k = 0; k < active.Count; k++)
                local[active[k]] = k;

            Tensor x, h, c;
            using (var idx = Index(active.Select(r => (long)r), device))
            {
                x = active.Count == rows ? raw.narrow(0, 0, rows) : raw.index_select(0, idx);
                h = h0 is null ? zeros(1, active.Count, hiddenSize, dtype: dtype, device: device) : h0.index_select(0, idx).unsqueeze(0);
                c = c0 is null ? zeros(1, active.Count, hiddenSize, dtype: dtype, device: device) : c0.index_select(0, idx).unsqueeze(0);
            }

            CellWeights? weights = null;
            int t = 0, next = 0;
            while (true)
            {
                // The call ends at the last wanted position, after maxChunk steps, or at the first wanted position
                // that is at least minCall steps away; positions before that are served from inside the call.
                int end = (int)Math.Min((long)t + maxChunk, active.Max(r => lastWanted[r]));
                for (int k = next; k < pending.Length; k++)
                {
                    int p = requests[pending[k]].Position;
                    if (p >= t + minCall)
                    {
                        end = Math.Min(end, p);
                        break;
                    }
                }
                // Rows whose last wanted position comes sooner leave there instead of riding along to the end: a
                // cut costs about one short call, carrying them costs their steps (with gradient, their activations too).
                end = LeaveEarly(pending, next, requests, lastWanted, t, end, active.Count, minCall);
                int first = next;
                while (next < pending.Length && requests[pending[next]].Position <= end)
                    next++;
                var inCall = pending.AsSpan(first, next - first).ToArray();

                using (var scope = NewDisposeScope())
                {
                    var input = encode(x.narrow(1, t, end - t));
                    var (output, hn, cn) = LstmKernelGuard.Forward(lstm, input, (h, c));
                    var atEnd = inCall.Where(i => requests[i].Position == end).ToArray();
                    if (atEnd.Length > 0)
                    {
                        var idx = Index(atEnd.Select(i => (long)local[requests[i].Row]), device);
                        piecesH.Add(hn[0].index_select(0, idx).MoveToOuterDisposeScope());
                        piecesC.Add(Cells(atEnd, requests, wanted => cn[0].index_select(0, Index(wanted.Select(i => (long)local[requests[i].Row]), device)),
                            hiddenSize, dtype, device).MoveToOuterDisposeScope());
                        order.AddRange(atEnd);
                    }

                    var inside = inCall.Where(i => requests[i].Position < end).ToArray();
                    if (inside.Length > 0)
                    {
                        // h after reading steps [t, p) is output step p − t − 1.
                        var rowIdx = Index(inside.Select(i => (long)local[requests[i].Row]), device);
                        var stepIdx = Index(inside.Select(i => (long)(requests[i].Position - t - 1)), device);
                        piecesH.Add(output.index(TensorIndex.Tensor(rowIdx), TensorIndex.Tensor(stepIdx)).MoveToOuterDisposeScope());
                        piecesC.Add(Cells(inside, requests, wanted =>
                        {
                            weights ??= CellWeights.Of(lstm, hiddenSize);
                            return RebuildCells(weights, input, output, h[0], c[0], wanted.Select(i => local[requests[i].Row]).ToArray(),
                                wanted.Select(i => requests[i].Position - t).ToArray(), hiddenSize);
                        }, hiddenSize, dtype, device).MoveToOuterDisposeScope());
                        order.AddRange(inside);
                    }

                    output.Dispose();
                    h.Dispose();
                    c.Dispose();
                    h = hn.MoveToOuterDisposeScope();
                    c = cn.MoveToOuterDisposeScope();
                }
                t = end;

                var keep = active.Where(r => lastWanted[r] > t).ToList();
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

    /// <summary>
    /// The end of a call from <paramref name="t"/> that would run to <paramref name="end"/>, moved forward to the
    /// first wanted position where some rows want their last state, if cutting there saves more row-steps
    /// (leaving rows × steps to <paramref name="end"/>) than a call costs (about <paramref name="minCall"/> steps of
    /// every active row).
    /// </summary>
    internal static int LeaveEarly(int[] pending, int next, IReadOnlyList<StateRequest> requests, int[] lastWanted, int t, int end, int activeRows, int minCall)
    {
        for (int k = next; k < pending.Length; k++)
        {
            int p = requests[pending[k]].Position;
            if (p >= end)
                break;
            var leaving = new HashSet<int>();
            for (int j = k; j < pending.Length && requests[pending[j]].Position == p; j++)
            {
                if (lastWanted[requests[pending[j]].Row] == p)
                    leaving.Add(requests[pending[j]].Row);
            }
            if ((long)leaving.Count * (end - p) > (long)activeRows * minCall)
                return p;
        }
        return end;
    }

    /// <summary>
    /// The cell-state rows of requests <paramref name="ids"/>, in that order: <paramref name="rowsFor"/> computes those
    /// of the requests that want c (given in order); <see cref="StateRequest.HiddenOnly"/> requests get zeros.
    /// </summary>
    private static Tensor Cells(int[] ids, IReadOnlyList<StateRequest> requests, Func<int[], Tensor> rowsFor, int hiddenSize, ScalarType dtype, Device device)
    {
        var wanted = ids.Where(i => !requests[i].HiddenOnly).ToArray();
        if (wanted.Length == ids.Length)
            return rowsFor(ids);
        if (wanted.Length == 0)
            return zeros(ids.Length, hiddenSize, dtype: dtype, device: device);
        using var rows = rowsFor(wanted);
        using var at = Index(Enumerable.Range(0, ids.Length).Where(k => !requests[ids[k]].HiddenOnly).Select(k => (long)k), device);
        using var empty = zeros(ids.Length, hiddenSize, dtype: rows.dtype, device: device);
        return empty.index_copy(0, at, rows);
    }

    /// <summary>
    /// c after reading <paramref name="lengths"/>[k] (1 ≤ length &lt; call length) steps of a call, for call rows
    /// <paramref name="rows"/>[k]: c ← f ⊙ c + i ⊙ g from the call's initial c, with the gates recomputed from the
    /// call's input and output.
    /// </summary>
    internal static Tensor RebuildCells(CellWeights w, Tensor input, Tensor output, Tensor hInit, Tensor cInit, int[] rows, int[] lengths, int hiddenSize)
    {
        using var scope = NewDisposeScope();
        var device = input.device;
        var unique = rows.Distinct().ToArray();
        var slot = new Dictionary<int, int>(unique.Length);
        for (int u = 0; u < unique.Length; u++)
            slot[unique[u]] = u;
        int length = lengths.Max();

        var idx = Index(unique.Select(r => (long)r), device);
        var xs = input.index_select(0, idx).narrow(1, 0, length);
        var first = hInit.index_select(0, idx).unsqueeze(1);
        var previous = length == 1 ? first : cat(new[] { first, output.index_select(0, idx).narrow(1, 0, length - 1) }, 1);
        // One Scalar, held until the end: TorchSharp 0.107 reads a Scalar's handle and calls libtorch without keeping the
        // Scalar alive, so a temporary one (an implicit conversion, or the alpha of TorchSharp's own Tensor + Tensor) can
        // be finalized during the call and libtorch reads freed memory ("Expected false to be true" from Scalar::toFloat,
        // seen in a long run; ScalarLifetimeTests reproduces it).
        using Scalar one = 1;
        var gates = nn.functional.linear(xs, w.InputWeight, w.InputBias).add(nn.functional.linear(previous, w.HiddenWeight, w.HiddenBias), one);
        var inputForget = gates.narrow(2, 0, 2 * hiddenSize).sigmoid();
        var update = inputForget.narrow(2, 0, hiddenSize) * gates.narrow(2, 2 * hiddenSize, hiddenSize).tanh();
        var forget = inputForget.narrow(2, hiddenSize, hiddenSize).unbind(1);
        var updates = update.unbind(1);

        var cell = cInit.index_select(0, idx);
        var cells = new Tensor[length];
        for (int s = 0; s < length; s++)
        {
            cell = addcmul(updates[s], forget[s], cell, one);
            cells[s] = cell;
        }
        var pick = Index(rows.Select((r, k) => (long)slot[r] * length + lengths[k] - 1), device);
        return stack(cells, 1).reshape(-1, hiddenSize).index_select(0, pick).MoveToOuterDisposeScope();
    }

    private static Tensor Index(IEnumerable<long> values, Device device) => tensor(values.ToArray(), device: device);

    /// <summary>The weights of a one-layer LSTM (gate order i, f, g, o): the module's own parameters, not copies.</summary>
    internal sealed record CellWeights(Tensor InputWeight, Tensor HiddenWeight, Tensor? InputBias, Tensor? HiddenBias)
    {
        public static CellWeights Of(LSTM lstm, int hiddenSize)
        {
            // named_parameters returns the module's registered Parameter objects: never dispose them.
            var byName = lstm.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
            if (!byName.TryGetValue("weight_ih_l0", out var wih) || !byName.TryGetValue("weight_hh_l0", out var whh)
                || byName.ContainsKey("weight_ih_l1") || whh.shape[0] != 4L * hiddenSize)
                throw new ArgumentException("Expected a one-layer LSTM.", nameof(lstm));
            byName.TryGetValue("bias_ih_l0", out var bih);
            byName.TryGetValue("bias_hh_l0", out var bhh);
            return new CellWeights(wih, whh, bih, bhh);
        }
    }
}
