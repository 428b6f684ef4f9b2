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
            if (predict)
            {
                var predictions = _decoder!.ForwardPredict(states.Outputs!);
                auxiliaryLoss = _decoder.Loss(predictions, segmentRaw, segments.Select(s => s.Length).ToArray(), batch.Count);
            }
            else
            {
                var predictions = _decoder!.Forward(states.AnchorH!, states.AnchorC!, segmentRaw, samplingProbability, generator,
                    StepwiseDecoder || (ExactSampling && samplingProbability > 0));
                long m = segmentRaw.shape[1];
                auxiliaryLoss = _decoder.Loss(predictions, segmentRaw.narrow(1, 1, m - 1), segments.Select(s => s.Length - 1).ToArray(), batch.Count);
            }
        }
        return new BatchLosses(supervisedLoss, auxiliaryLoss, logits);
    }

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
