namespace Microsoft.ML.AuxRnn.Training;

/// <summary>
/// One auxiliary segment of a batch row, steps [<see cref="Start"/>, Start + <see cref="Length"/>) of the row.
/// r-LSTM: the main LSTM's state after reading steps [0, <see cref="Anchor"/>) starts the decoder, which is fed the
/// segment's first step (its last when <see cref="Reverse"/>) and predicts the rest.
/// p-LSTM: <see cref="Start"/> is the anchor; the auxiliary LSTM, stacked on the main LSTM's outputs from the anchor on,
/// predicts every step of the segment, each from the main LSTM's state just before it.
/// </summary>
internal readonly record struct AuxSegment(int Row, int Anchor, int Start, int Length, bool Reverse)
{
    public int End => Start + Length;

    /// <summary>The row's step read at the decoder's position <paramref name="j"/> (0 ≤ j &lt; Length).</summary>
    public int StepAt(int j) => Reverse ? End - 1 - j : Start + j;
}

/// <summary>
/// Samples the anchors and segments of the auxiliary losses, independently for every row and training step, at
/// random positions over each row's whole real (unpadded) length; a segment that would run past the row's start
/// or end is shorter.
/// </summary>
/// <remarks>
/// With m = <see cref="AuxLstmClassifierOptions.SegmentLength"/> and L the row's length:
/// <list type="bullet">
/// <item>r-LSTM: anchor a uniform in [2, L]; the segment's end e uniform in
/// [max(2, a − DistantPastRange), min(L, a + SpillPastAnchor)]; the segment is [max(0, e − m), e), read in reverse
/// unless <see cref="AuxLstmClassifierOptions.ReverseReconstruction"/> is off. With both ranges 0 the segment is
/// the (up to) m steps right before the anchor.</item>
/// <item>p-LSTM: anchor a uniform in [1, L − 1]; the segment is [a, min(L, a + m)): the steps after the anchor,
/// each predicted from the main LSTM's output one step earlier.</item>
/// </list>
/// Rows shorter than 2 steps get no segment (nothing to predict).
/// </remarks>
internal sealed class AnchorSampler
{
    private readonly AuxiliaryLoss _loss;
    private readonly int _segmentLength;
    private readonly int _perSequence;
    private readonly bool _reverse;
    private readonly int _distantPast;
    private readonly int _spill;

    public AnchorSampler(AuxLstmClassifierOptions options)
        : this(options.AuxiliaryLoss, options.SegmentLength, options.SegmentsPerSequence, options.ReverseReconstruction,
            options.DistantPastRange, options.SpillPastAnchor)
    {
    }

    public AnchorSampler(AuxiliaryLoss loss, int segmentLength, int perSequence, bool reverse, int distantPast, int spill)
    {
        _loss = loss;
        _segmentLength = segmentLength;
        _perSequence = perSequence;
        _reverse = reverse;
        _distantPast = distantPast;
        _spill = spill;
    }

    /// <summary>Segments for every row of a batch with the given lengths (none for <see cref="AuxiliaryLoss.None"/>).</summary>
    public List<AuxSegment> Sample(IReadOnlyList<int> lengths, Random rng)
    {
        var segments = new List<AuxSegment>(lengths.Count * _perSequence);
        if (_loss == AuxiliaryLoss.None)
            return segments;
        for (int row = 0; row < lengths.Count; row++)
        {
            int length = lengths[row];
            if (length < 2)
                continue;
            for (int k = 0; k < _perSequence; k++)
                segments.Add(_loss == AuxiliaryLoss.Reconstruct ? Reconstruct(row, length, rng) : Predict(row, length, rng));
        }
        return segments;
    }

    private AuxSegment Reconstruct(int row, int length, Random rng)
    {
        int anchor = rng.Next(2, length + 1);
        int lowEnd = Math.Max(2, anchor - _distantPast);
        int highEnd = Math.Min(length, anchor + _spill);
        int end = rng.Next(lowEnd, highEnd + 1);
        int start = Math.Max(0, end - _segmentLength);
        return new AuxSegment(row, anchor, start, end - start, _reverse);
    }

    private AuxSegment Predict(int row, int length, Random rng)
    {
        int anchor = rng.Next(1, length);
        return new AuxSegment(row, anchor, anchor, Math.Min(_segmentLength, length - anchor), false);
    }
}
