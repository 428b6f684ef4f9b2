using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>A batch's losses (scalars), before backpropagation.</summary>
/// <param name="Supervised">Mean cross-entropy of the labels, or null in pre-training.</param>
/// <param name="Auxiliary">The auxiliary loss, or null without one (or without any segment).</param>
/// <param name="Logits">(B, K) class logits when supervised.</param>
internal sealed record BatchLosses(Tensor? Supervised, Tensor? Auxiliary, Tensor? Logits)
{
    /// <summary>L_supervised + L_auxiliary, or null when the batch has neither.</summary>
    public Tensor? Total => Supervised is null ? Auxiliary : Auxiliary is null ? Supervised : Supervised + Auxiliary;
}

/// <summary>
/// The training objective of one batch: truncated forward passes of the main LSTM (<see cref="TruncatedBptt"/>),
/// the classifier's cross-entropy and the auxiliary decoder's loss on the sampled segments.
/// </summary>
internal sealed class AuxObjective
{
    private readonly AuxLstmNetwork _network;
    private readonly AuxiliaryDecoder? _decoder;
    private readonly TruncatedBptt _bptt;
    private readonly Device _device;

    public AuxObjective(AuxLstmNetwork network, AuxiliaryDecoder? decoder, TruncatedBptt bptt, Device device)
    {
        _network = network;
        _decoder = decoder;
        _bptt = bptt;
        _device = device;
    }

    /// <summary>Forces the decoder to run step by step (tests compare it with the fused path).</summary>
    internal bool StepwiseDecoder { get; set; }

    /// <summary>Scheduled sampling step by step (<see cref="AuxLstmClassifierOptions.ExactScheduledSampling"/>) rather than in two fused passes.</summary>
    internal bool ExactSampling { get; set; }

    /// <param name="batch">The batch.</param>
    /// <param name="segments">Its auxiliary segments (ignored without a decoder).</param>
    /// <param name="supervised">Whether to compute the supervised loss (false in pre-training).</param>
    /// <param name="samplingProbability">The decoder's scheduled-sampling probability now.</param>
    /// <param name="generator">Random source of DropConnect and scheduled sampling.</param>
    public BatchLosses Compute(SequenceBatch batch, IReadOnlyList<AuxSegment> segments, bool supervised, double samplingProbability, Generator? generator)
    {
        if (_decoder is null)
            segments = Array.Empty<AuxSegment>();
        var raw = _network.RawInput(batch, _device);
        bool predict = _decoder?.Predicts == true;
        var states = _bptt.Run(_network, batch, raw, supervised, segments, predict);

        Tensor? supervisedLoss = null, logits = null, auxiliaryLoss = null;
        if (supervised && LabeledRows(batch) is { Length: > 0 } labeled)
        {
            // Semi-supervised: rows without a label (−1) train the auxiliary loss only.
            var final = labeled.Length == batch.Count ? states.Final! : states.Final!.index_select(0, tensor(labeled, device: _device));
            logits = _network.Classify(final, generator);
            if (logits.dtype != ScalarType.Float32)
                logits = logits.to(ScalarType.Float32); // mixed precision: the softmax and cross-entropy in float32
            var labels = tensor(labeled.Select(i => batch.Labels[i]).ToArray(), device: _device);
            supervisedLoss = nn.functional.cross_entropy(logits, labels);
        }

        if (segments.Count > 0)
        {
            // The decoder reads and predicts continuous steps standardised as the main network reads them.
            var segmentRaw = _network.Standardize(GatherSegments(batch, segments, _device));
            bool stepwise = StepwiseDecoder || (ExactSampling && samplingProbability > 0);
            // Segments of similar length share a decoder call, padded to the longest of their group only: the loss is a
            // sum over segments, so the groups' losses add up to the one padded call's (DecoderGroupsMatchOnePaddedCall).
            foreach (var (index, members) in LengthGroups(segments, DecoderGroups, MinGroupedLength))
            {
                int longest = members.Max(i => segments[i].Length);
                var idx = index is null ? null : tensor(index, device: _device);
                var raw1 = idx is null ? segmentRaw : segmentRaw.index_select(0, idx);
                Tensor loss;
                if (predict)
                {
                    var outputs = idx is null ? states.Outputs! : states.Outputs!.index_select(0, idx);
                    var predictions = _decoder!.ForwardPredict(outputs.narrow(1, 0, longest));
                    loss = _decoder.Loss(predictions, raw1.narrow(1, 0, longest), members.Select(i => segments[i].Length).ToArray(), batch.Count);
                }
                else
                {
                    int m = Math.Min((int)segmentRaw.shape[1], Math.Max(2, longest));
                    var h = idx is null ? states.AnchorH! : states.AnchorH!.index_select(0, idx);
                    var c = idx is null ? states.AnchorC! : states.AnchorC!.index_select(0, idx);
                    var read = raw1.narrow(1, 0, m);
                    var predictions = _decoder!.Forward(h, c, read, samplingProbability, generator, stepwise);
                    loss = _decoder.Loss(predictions, read.narrow(1, 1, m - 1), members.Select(i => segments[i].Length - 1).ToArray(), batch.Count);
                }
                auxiliaryLoss = auxiliaryLoss is null ? loss : auxiliaryLoss + loss;
            }
        }
        return new BatchLosses(supervisedLoss, auxiliaryLoss, logits);
    }

    /// <summary>
    /// Decoder calls per batch: the segments, sorted by length, are split into at most this many groups of equal count,
    /// each run padded to its own longest (1: one call padded to the longest of all, as before).
    /// </summary>
    internal int DecoderGroups { get; set; } = 4;

    /// <summary>
    /// The segments in groups of similar length: each group's members (indices into <paramref name="segments"/>) and
    /// their index array, or a null index for a single group of all segments in their own order.
    /// </summary>
    internal static IEnumerable<(long[]? Index, int[] Members)> LengthGroups(IReadOnlyList<AuxSegment> segments, int groups, int minGroupedLength = DefaultMinGroupedLength)
    {
        int count = segments.Count;
        groups = Math.Clamp(groups, 1, count);
        var order = Enumerable.Range(0, count).OrderByDescending(i => segments[i].Length).ThenBy(i => i).ToArray();
        var bounds = Enumerable.Range(0, groups + 1).Select(g => (int)((long)g * count / groups)).Distinct().ToArray();
        // Split only where it pays: segments long enough that a call's fixed cost is small beside its steps, and at
        // least a quarter of the padded steps saved.
        long padded = (long)count * segments[order[0]].Length;
        long grouped = 0;
        for (int g = 0; g + 1 < bounds.Length; g++)
            grouped += (long)(bounds[g + 1] - bounds[g]) * segments[order[bounds[g]]].Length;
        if (bounds.Length <= 2 || segments[order[0]].Length < minGroupedLength || grouped > padded * 3 / 4)
        {
            yield return (null, Enumerable.Range(0, count).ToArray());
            yield break;
        }
        for (int g = 0; g + 1 < bounds.Length; g++)
        {
            var members = order[bounds[g]..bounds[g + 1]];
            yield return (members.Select(i => (long)i).ToArray(), members);
        }
    }

    /// <summary>Segments shorter than this are decoded in one call whatever their lengths (a call's fixed cost dominates).</summary>
    internal const int DefaultMinGroupedLength = 64;

    /// <summary>See <see cref="DefaultMinGroupedLength"/> (tests lower it).</summary>
    internal int MinGroupedLength { get; set; } = DefaultMinGroupedLength;

    /// <summary>The rows of the batch that have a label (−1: none), checking the labels' range.</summary>
    private long[] LabeledRows(SequenceBatch batch)
    {
        int classes = _network.Shape.ClassCount;
        var labeled = new List<long>(batch.Count);
        for (int i = 0; i < batch.Count; i++)
        {
            if (batch.Labels[i] >= classes || batch.Labels[i] < -1)
                throw new ArgumentException($"Row {i} of the batch has label {batch.Labels[i]}, outside 0..{classes - 1}.", nameof(batch));
            if (batch.Labels[i] >= 0)
                labeled.Add(i);
        }
        return labeled.ToArray();
    }

    /// <summary>
    /// Raw steps of each segment in the decoder's reading order (reversed for reverse reconstruction), padded with 0
    /// to the longest: (R, M) tokens or (R, M, S) values.
    /// </summary>
    internal static Tensor GatherSegments(SequenceBatch batch, IReadOnlyList<AuxSegment> segments, Device device)
    {
        int longest = segments.Max(s => s.Length);
        int t = batch.MaxLength;
        foreach (var s in segments)
        {
            if (s.Start < 0 || s.Length < 1 || s.End > batch.Lengths[s.Row])
                throw new ArgumentOutOfRangeException(nameof(segments), $"Segment {s} lies outside row {s.Row}'s {batch.Lengths[s.Row]} steps.");
        }

        if (batch.Tokens is { } tokens)
        {
            var data = new long[segments.Count * longest];
            for (int r = 0; r < segments.Count; r++)
            {
                var s = segments[r];
                long rowBase = (long)s.Row * t;
                for (int j = 0; j < s.Length; j++)
                    data[r * longest + j] = tokens[rowBase + s.StepAt(j)];
            }
            return tensor(data, new long[] { segments.Count, longest }, device: device);
        }

        int size = batch.StepSize;
        var values = new float[segments.Count * longest * size];
        for (int r = 0; r < segments.Count; r++)
        {
            var s = segments[r];
            for (int j = 0; j < s.Length; j++)
                Array.Copy(batch.Values!, ((long)s.Row * t + s.StepAt(j)) * size, values, ((long)r * longest + j) * size, size);
        }
        return tensor(values, new long[] { segments.Count, longest, size }, device: device);
    }
}
