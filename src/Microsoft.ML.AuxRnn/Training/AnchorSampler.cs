namespace Microsoft.ML.AuxRnn.Training;

/// <summary>
/// One auxiliary segment of a batch row. The main LSTM's state after reading steps [0, <see cref="Anchor"/>)
/// starts the decoder, which is fed the segment's first step and predicts the rest of steps
/// [<see cref="Start"/>, Start + <see cref="Length"/>), last step first when <see cref="Reverse"/>.
/// </summary>
internal readonly record struct AuxSegment(int Row, int Anchor, int Start, int Length, bool Reverse)
{
    public int End => Start + Length;

    /// <summary>The row's step read at the decoder's position <paramref name="j"/> (0 ≤ j &lt; Length).</summary>
    public int StepAt(int j) => Reverse ? End - 1 - j : Start + j;
}

/// <summary>
/// Samples the anchors and segments of the auxiliary losses, independently for every row and training step,
/// always inside each row's real (unpadded) length.
/// </summary>
/// <remarks>
/// With m = min(SegmentLength, row length):
/// <list type="bullet">
/// <item>r-LSTM: anchor a uniform in [m, L]; the segment's end e uniform in
/// [max(m, a − DistantPastRange), min(L, a + SpillPastAnchor)]; the segment is [e − m, e), read in reverse
/// unless <see cref="AuxLstmClassifierOptions.ReverseReconstruction"/> is off. With both ranges 0 the segment is
/// the m steps right before the anchor.</item>
/// <item>p-LSTM: anchor a uniform in [1, L − m + 1]; the segment is [a − 1, a − 1 + m): the decoder is fed the
/// last step the main LSTM read and predicts the m − 1 steps after the anchor, language-model style.</item>
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
            int m = Math.Min(_segmentLength, length);
            for (int k = 0; k < _perSequence; k++)
                segments.Add(_loss == AuxiliaryLoss.Reconstruct ? Reconstruct(row, length, m, rng) : Predict(row, length, m, rng));
        }
        return segments;
    }

    private AuxSegment Reconstruct(int row, int length, int m, Random rng)
    {
        int anchor = rng.Next(m, length + 1);
        int lowEnd = Math.Max(m, anchor - _distantPast);
        int highEnd = Math.Min(length, anchor + _spill);
        int end = rng.Next(lowEnd, highEnd + 1);
        return new AuxSegment(row, anchor, end - m, m, _reverse);
    }

    private static AuxSegment Predict(int row, int length, int m, Random rng)
    {
        int anchor = rng.Next(1, length - m + 2);
        return new AuxSegment(row, anchor, anchor - 1, m, false);
    }
}
