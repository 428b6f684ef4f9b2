using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>Steps [<see cref="Start"/>, <see cref="End"/>) of a row through which a loss backpropagates into the main LSTM.</summary>
internal readonly record struct BpttWindow(int Row, int Start, int End)
{
    public int Length => End - Start;
}

/// <summary>The main LSTM's states a batch's losses start from: the classifier's and each anchor's.</summary>
/// <param name="Final">(B, H) hidden state after each row's last step, or null without the supervised loss.</param>
/// <param name="AnchorH">(S, H) hidden state at each segment's anchor, or null without segments.</param>
/// <param name="AnchorC">(S, H) cell state at each segment's anchor, or null without segments.</param>
/// <param name="Outputs">p-LSTM: (S, N, H) main-LSTM hidden states at positions Start .. Start + N − 1 of each
/// segment (the state each of its steps is predicted from), padded to the longest segment; null otherwise.</param>
internal sealed record MainStates(Tensor? Final, Tensor? AnchorH, Tensor? AnchorC, Tensor? Outputs = null);

/// <summary>
/// Truncated backpropagation through time with memory that does not grow with sequence length.
/// </summary>
/// <remarks>
/// The supervised loss of a row of length L backpropagates through steps [L − k, L) only (k =
/// <see cref="AuxLstmClassifierOptions.TruncationLength"/>; all steps when null, none when 0); the auxiliary loss
/// of an anchor a through [a − k′, a) only (k′ = <see cref="AuxLstmClassifierOptions.AuxiliaryTruncationLength"/>).
/// <see cref="Run"/> first runs the main LSTM without gradient, in fused chunks, up to the windows' starts and
/// keeps only the states there; then it re-runs all windows of the batch (supervised and auxiliary, for every
/// row) in one batched, fused call with gradient, from those detached states. Memory is therefore
/// O(rows × (k + k′) × H) whatever the sequence length; only the gradient-free forward pass grows with it.
/// </remarks>
internal sealed class TruncatedBptt
{
    private readonly int? _supervised;
    private readonly int? _auxiliary;
    private readonly int _chunk;

    public TruncatedBptt(int? supervisedTruncation, int? auxiliaryTruncation, int forwardChunk = AuxLstmNetwork.ForwardChunk)
    {
        if (supervisedTruncation < 0)
            throw new ArgumentOutOfRangeException(nameof(supervisedTruncation));
        if (auxiliaryTruncation < 0)
            throw new ArgumentOutOfRangeException(nameof(auxiliaryTruncation));
        if (forwardChunk < 1)
            throw new ArgumentOutOfRangeException(nameof(forwardChunk));
        _supervised = supervisedTruncation;
        _auxiliary = auxiliaryTruncation;
        _chunk = forwardChunk;
    }

    public TruncatedBptt(AuxLstmClassifierOptions options)
        : this(options.TruncationLength, options.AuxiliaryTruncationLength)
    {
    }

    /// <summary>The supervised window of a row with <paramref name="length"/> steps: [max(0, L − k), L).</summary>
    public BpttWindow SupervisedWindow(int row, int length) => new(row, Start(length, _supervised), length);

    /// <summary>The window of an auxiliary segment: [max(0, a − k′), a) before its anchor a.</summary>
    public BpttWindow AuxiliaryWindow(AuxSegment segment) => new(segment.Row, Start(segment.Anchor, _auxiliary), segment.Anchor);

    /// <summary>
    /// The window of a p-LSTM segment [a, a + n): the k′ steps before its anchor and the segment's steps but its last,
    /// [max(0, a − k′), a + n − 1), which the main LSTM reads with gradient to give the states at positions a .. a + n − 1.
    /// </summary>
    public BpttWindow PredictionWindow(AuxSegment segment) => new(segment.Row, Start(segment.Anchor, _auxiliary), segment.End - 1);

    private static int Start(int end, int? truncation) => truncation is { } k ? Math.Max(0, end - k) : 0;

    /// <summary>
    /// The states the losses start from, with gradient flowing into the main network exactly through each
    /// loss's window.
    /// </summary>
    /// <param name="network">The main network.</param>
    /// <param name="batch">The batch (its lengths and raw steps).</param>
    /// <param name="raw">The batch's raw input on the device (<see cref="AuxLstmNetwork.RawInput"/>).</param>
    /// <param name="supervised">Whether the classifier's final states are wanted.</param>
    /// <param name="segments">The auxiliary segments, whose anchor states are wanted.</param>
    /// <param name="predict">Whether the segments are p-LSTM ones (outputs over each segment rather than anchor states).</param>
    public MainStates Run(AuxLstmNetwork network, SequenceBatch batch, Tensor raw, bool supervised, IReadOnlyList<AuxSegment> segments, bool predict = false)
    {
        if (predict && segments.Count > 0)
            return RunPredict(network, batch, raw, supervised, segments);
        var windows = new List<BpttWindow>((supervised ? batch.Count : 0) + segments.Count);
        if (supervised)
        {
            for (int i = 0; i < batch.Count; i++)
                windows.Add(SupervisedWindow(i, batch.Lengths[i]));
        }
        foreach (var s in segments)
        {
            if (s.Row < 0 || s.Row >= batch.Count || s.Anchor < 1 || s.Anchor > batch.Lengths[s.Row])
                throw new ArgumentOutOfRangeException(nameof(segments), $"Segment {s} lies outside row {s.Row}'s length.");
            windows.Add(AuxiliaryWindow(s));
        }
        if (windows.Count == 0)
            return new MainStates(null, null, null);

        // 1. Gradient-free forward pass, in fused chunks, up to every window's start.
        Tensor h0, c0;
        using (no_grad())
        {
            var starts = windows.Select(w => new StateRequest(w.Row, w.Start)).ToList();
            (h0, c0) = network.StatesAt(raw, null, null, starts, _chunk);
        }

        // 2. All windows again, batched in one fused pass with gradient, from the detached states.
        var (h, c) = WindowsWithGradient(network, batch, raw, windows, h0, c0, hiddenOnly: supervised ? batch.Count : 0);

        int b = supervised ? batch.Count : 0;
        Tensor? final = supervised ? h.narrow(0, 0, b) : null;
        if (segments.Count == 0)
            return new MainStates(final, null, null);
        return new MainStates(final, h.narrow(0, b, segments.Count), c.narrow(0, b, segments.Count));
    }

    /// <summary>
    /// Runs every window with gradient, batched in one fused call from its detached start state (rows of
    /// <paramref name="h0"/> and <paramref name="c0"/> in window order), and returns the states at each window's end.
    /// The first <paramref name="hiddenOnly"/> windows need their hidden state only.
    /// </summary>
    private static (Tensor H, Tensor C) WindowsWithGradient(AuxLstmNetwork network, SequenceBatch batch, Tensor raw,
        IReadOnlyList<BpttWindow> windows, Tensor h0, Tensor c0, int hiddenOnly)
    {
        int longest = windows.Max(w => w.Length);
        if (longest == 0)
            return (h0, c0);
        using var windowRaw = Gather(batch, windows, longest, raw.device);
        // The classifier reads h only; anchors start the decoder from (h, c).
        var ends = windows.Select((w, j) => new StateRequest(j, w.Length) { HiddenOnly = j < hiddenOnly }).ToList();
        return network.StatesAt(windowRaw, h0, c0, ends, int.MaxValue);
    }

    private MainStates RunPredict(AuxLstmNetwork network, SequenceBatch batch, Tensor raw, bool supervised, IReadOnlyList<AuxSegment> segments)
    {
        var windows = new List<BpttWindow>(segments.Count);
        foreach (var s in segments)
        {
            if (s.Row < 0 || s.Row >= batch.Count || s.Anchor < 1 || s.Start != s.Anchor || s.Length < 1 || s.End > batch.Lengths[s.Row])
                throw new ArgumentOutOfRangeException(nameof(segments), $"Segment {s} lies outside row {s.Row}'s length.");
            windows.Add(PredictionWindow(s));
        }
        // States at each window's start, the classifier's windows first, from one gradient-free pass over the rows
        // (not one pass for each loss).
        var supervisedWindows = supervised
            ? Enumerable.Range(0, batch.Count).Select(i => SupervisedWindow(i, batch.Lengths[i])).ToList()
            : new List<BpttWindow>();
        int b = supervisedWindows.Count;
        Tensor hStarts, cStarts;
        using (no_grad())
            (hStarts, cStarts) = network.StatesAt(raw, null, null, supervisedWindows.Concat(windows).Select(w => new StateRequest(w.Row, w.Start)).ToList(), _chunk);
        var (h0, c0) = (hStarts.narrow(0, b, windows.Count), cStarts.narrow(0, b, windows.Count));
        var final = b > 0 ? WindowsWithGradient(network, batch, raw, supervisedWindows, hStarts.narrow(0, 0, b), cStarts.narrow(0, 0, b), hiddenOnly: b).H : null;

        // Then the prediction windows with gradient, in one fused call.
        int longest = windows.Max(w => w.Length);
        Tensor states; // (S, 1 + longest, H): position Start + j of window j's row at index j
        if (longest == 0)
        {
            states = h0.unsqueeze(1);
        }
        else
        {
            using var windowRaw = Gather(batch, windows, longest, raw.device);
            using var encoded = network.EncodeRaw(windowRaw);
            var (output, hn, cn) = network.Lstm.forward(encoded, (h0.unsqueeze(0), c0.unsqueeze(0)));
            hn.Dispose();
            cn.Dispose();
            states = cat(new[] { h0.unsqueeze(1), output }, 1);
            output.Dispose();
        }

        int n = segments.Max(s => s.Length);
        var index = new long[segments.Count * n];
        for (int r = 0; r < segments.Count; r++)
        {
            int offset = segments[r].Anchor - windows[r].Start;
            for (int j = 0; j < n; j++)
                index[r * n + j] = offset + Math.Min(j, segments[r].Length - 1);
        }
        using var idx = tensor(index, new long[] { segments.Count, n, 1 }, device: raw.device);
        var outputs = states.gather(1, idx.expand(segments.Count, n, states.shape[2]));
        states.Dispose();
        return new MainStates(final, null, null, outputs);
    }

    /// <summary>Raw input of each window, left-aligned and padded with 0: (W, K) tokens or (W, K, S) values.</summary>
    internal static Tensor Gather(SequenceBatch batch, IReadOnlyList<BpttWindow> windows, int longest, Device device)
    {
        int t = batch.MaxLength;
        if (batch.Tokens is { } tokens)
        {
            var data = new long[windows.Count * longest];
            for (int w = 0; w < windows.Count; w++)
                Array.Copy(tokens, (long)windows[w].Row * t + windows[w].Start, data, (long)w * longest, windows[w].Length);
            return tensor(data, new long[] { windows.Count, longest }, device: device);
        }

        int s = batch.StepSize;
        var values = new float[windows.Count * longest * s];
        for (int w = 0; w < windows.Count; w++)
            Array.Copy(batch.Values!, ((long)windows[w].Row * t + windows[w].Start) * s, values, (long)w * longest * s, (long)windows[w].Length * s);
        return tensor(values, new long[] { windows.Count, longest, s }, device: device);
    }
}
