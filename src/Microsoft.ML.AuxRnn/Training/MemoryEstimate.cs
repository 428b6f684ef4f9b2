using System.Globalization;
using Microsoft.ML.AuxRnn.Model;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>
/// How much memory one training step needs, estimated before training from the options, the network's shape and
/// the longest sequence, so that a run that cannot fit fails at once (suggesting a truncation length) instead of
/// being killed by the operating system hours later.
/// </summary>
/// <remarks>
/// <para>A step re-runs every backpropagation window of the batch (B supervised ones and S·B auxiliary ones, see
/// <see cref="TruncatedBptt"/>) in one fused LSTM call, and keeps each window step's activations for the backward
/// pass; the auxiliary decoder does the same over S·B segments of length m. So the
/// activations grow linearly with the batch size and with the window length, which is the longest sequence itself
/// under full backpropagation through time (<see cref="AuxLstmClassifierOptions.TruncationLength"/> = null).
/// Parameters, gradients, optimizer state and a copy of the best weights are added.</para>
/// <para><see cref="LstmFloatsPerCell"/> was measured with libtorch 2.10's CPU LSTM (peak resident memory of one
/// full-BPTT step, batch 16, H = 64 and 128, 1,000 to 3,000 steps: 17.3 floats per cell).</para>
/// </remarks>
internal sealed class MemoryEstimate
{
    /// <summary>Floats kept per LSTM step, row and hidden unit for the backward pass (gates, states, their nonlinearities and gradients).</summary>
    internal const double LstmFloatsPerCell = 18;

    /// <summary>
    /// What a step of an auxiliary window costs relative to a supervised one. Measured with libtorch 2.10 on the CPU
    /// (full backpropagation, 2,000 steps, H = 64, r-LSTM with 20-step segments so the decoder is negligible): 16 and
    /// 32 auxiliary windows of ≈ 1,000 steps added 38 and 56 MiB where supervised steps at the same rate would have added
    /// 78 and 156 MiB, i.e. 0.36–0.49. The reason (the windows share the fused calls of the supervised ones) is not
    /// pinned down, so the estimate takes the upper end. (It took 0.6 until CI's machine measured the r-LSTM step of
    /// MemoryEstimateTests at 187 MiB where this one measures 240: the estimate of 282 MiB was 1.51× CI's figure.)
    /// </summary>
    internal const double AuxiliaryWindowShare = 0.5;

    /// <summary>
    /// Copies of the decoder's output (one value per token of the vocabulary, or per value of a step) kept per
    /// predicted step at the peak of a step's backward pass: the logits, the log-softmax that cross-entropy saves,
    /// the gradient coming back from the loss and the one going on to the output layer.
    /// </summary>
    internal const double DecoderOutputCopies = 4;

    /// <summary>Fixed working memory of a step besides what is modelled (libtorch's workspaces, the gradient-free chunks), in bytes.</summary>
    internal const long Overhead = 16L << 20;

    /// <summary>
    /// What an activation costs in bfloat16 mixed precision relative to float32 (<see cref="ComputePrecision.BFloat16"/>:
    /// the LSTMs' and linear layers' activations are bfloat16; the losses and the decoder's softmax stay float32).
    /// Measured with libtorch 2.10 on an AVX-512 BF16 CPU (MemoryEstimateTests' full-BPTT steps, H = 64, batch 16,
    /// 2,000 steps): 92, 117 and 130 MiB in bfloat16 against 161, 197 and 228 MiB in float32 (0.57–0.59×).
    /// </summary>
    internal const double BFloat16ActivationShare = 0.5;

    private readonly AuxLstmClassifierOptions _options;
    private readonly NetworkShape _shape;
    private readonly ComputePrecision _precision;

    /// <summary>The estimate for a CPU step in the precision <paramref name="options"/> resolve to on this machine.</summary>
    public MemoryEstimate(AuxLstmClassifierOptions options, NetworkShape shape)
        : this(options, shape, MixedPrecision.Resolve(options.Precision, TorchSharp.torch.CPU).Precision)
    {
    }

    /// <param name="options">The training options.</param>
    /// <param name="shape">The network's shape.</param>
    /// <param name="precision">The precision the step computes in: Float32 or BFloat16 (Auto already resolved).</param>
    public MemoryEstimate(AuxLstmClassifierOptions options, NetworkShape shape, ComputePrecision precision)
    {
        if (precision == ComputePrecision.Auto)
            throw new ArgumentException("Resolve Auto first.", nameof(precision));
        _options = options;
        _shape = shape;
        _precision = precision;
    }

    /// <summary>
    /// Peak bytes of one training step on rows of up to <paramref name="maxLength"/> steps, with the given
    /// truncation lengths (null: full backpropagation through time).
    /// </summary>
    public long Bytes(int maxLength, int? truncation, int? auxiliaryTruncation)
    {
        double b = Math.Max(1, _options.BatchSize);
        double t = Math.Max(1, maxLength);
        double h = _shape.HiddenSize, e = _shape.EmbeddingSize, head = _shape.ClassifierHiddenSize;
        double perLstmStep = LstmFloatsPerCell * h + 2 * e; // one layer's activations and the encoded input (and their gradients)
        bool auxiliary = _shape.AuxiliaryLoss != AuxiliaryLoss.None;
        double segments = auxiliary ? b * _options.SegmentsPerSequence : 0;

        // Supervised and auxiliary windows, batched in one fused call. A row leaves the fused calls at most
        // LstmRunner.MinCall steps after its window ends, so each window costs about its own length: the supervised one
        // up to the row's end, an auxiliary one up to its anchor (r-LSTM: anchors uniform in [2, L], the window
        // [a − k′, a); p-LSTM: anchors uniform in [1, L − 1], the window [a − k′, a + n − 1) over the predicted steps
        // too). See AnchorSampler and TruncatedBptt.
        double m = Math.Min(t, _options.SegmentLength);
        double supervisedWindow = truncation is { } k ? Math.Min(t, k) : t;
        double auxiliaryWindow = _shape.AuxiliaryLoss == AuxiliaryLoss.Predict
            ? MeanMin(1, t - 1, auxiliaryTruncation ?? t) + MeanMin(1, t - 1, m) - 1
            : MeanMin(2, t, auxiliaryTruncation ?? t);
        // In bfloat16 the activations take about half the bytes (BFloat16ActivationShare).
        double activation = _precision == ComputePrecision.BFloat16 ? BFloat16ActivationShare : 1;
        double windows = (b * supervisedWindow + segments * auxiliaryWindow * AuxiliaryWindowShare) * perLstmStep * activation;

        // The decoder over every segment: its LSTM layers and, at every step, the head and its outputs (logits,
        // log-softmax and their gradients): one value per token of the vocabulary (the dense one of the training keys,
        // for key columns), which for a large vocabulary is most of the step's memory. The outputs are counted in float32
        // in either precision: in bfloat16 the logits are cast up before the loss, so the bfloat16 copies come on top.
        double outputs = _shape.Discrete ? _shape.Vocabulary : _shape.StepSize;
        double decoder = segments * m * ((_options.DecoderLayers * perLstmStep + 2 * head) * activation + DecoderOutputCopies * outputs);

        // The batch on the device (int64 tokens or float values) and the gradient-free pass's chunks.
        double input = b * t * (_shape.Discrete ? 2 : _shape.StepSize);
        double chunks = b * Math.Min(t, AuxLstmNetwork.ForwardChunk) * (e + 8 * h) * activation;

        // Weights, gradients, optimizer state (RMSProp: 1 slot, Adam: 2) and the best epoch's copy; in bfloat16 also the
        // bfloat16 copy of the weights and its gradients (two half-size copies).
        double weightCopies = 2 + (_options.Optimizer == AuxOptimizer.Adam ? 2 : 1) + (_options.ValidationSet is null ? 0 : 1)
            + (_precision == ComputePrecision.BFloat16 ? 1 : 0);
        double weights = weightCopies * (Parameters(_shape) + (auxiliary ? DecoderParameters(_shape, _options.DecoderLayers) : 0));

        double floats = windows + decoder + input + chunks + weights;
        return Overhead + (long)Math.Min(floats * sizeof(float), long.MaxValue / 2);
    }

    /// <summary>Peak bytes of one training step with the options' own truncation lengths.</summary>
    public long Bytes(int maxLength) => Bytes(maxLength, _options.TruncationLength, _options.AuxiliaryTruncationLength);

    /// <summary>
    /// The largest truncation length (for both losses; a round number) with which a step fits in
    /// <paramref name="budget"/> bytes, or null when even short windows do not fit (the batch is too large).
    /// </summary>
    public int? LargestFittingTruncation(int maxLength, long budget)
    {
        const int Shortest = 10;
        if (Bytes(maxLength, Shortest, Shortest) > budget)
            return null;
        int low = Shortest, high = Math.Max(Shortest, maxLength);
        while (low < high)
        {
            int mid = low + (high - low + 1) / 2;
            if (Bytes(maxLength, mid, mid) <= budget)
                low = mid;
            else
                high = mid - 1;
        }
        return Round(low);
    }

    /// <summary>
    /// Throws, naming the options to change, when a training step on rows of up to <paramref name="maxLength"/>
    /// steps needs more than <paramref name="availableBytes"/>.
    /// </summary>
    public void ThrowIfTooLarge(int maxLength, long availableBytes)
    {
        long needed = Bytes(maxLength);
        if (needed <= availableBytes)
            return;

        string bptt = _options.TruncationLength is null
            ? $"full backpropagation through the longest sequence's {maxLength:N0} steps"
            : $"backpropagation through up to {Math.Min(maxLength, Math.Max(_options.TruncationLength.Value, _options.AuxiliaryTruncationLength ?? maxLength)):N0} steps";
        string message = string.Create(CultureInfo.InvariantCulture,
            $"Training would need about {Gib(needed)} of memory per step ({bptt}, {nameof(AuxLstmClassifierOptions.BatchSize)} = {_options.BatchSize:N0}, " +
            $"{nameof(AuxLstmClassifierOptions.HiddenSize)} = {_shape.HiddenSize:N0}), but only about {Gib(availableBytes)} is available. ");
        int? fitting = LargestFittingTruncation(maxLength, availableBytes * 8 / 10);
        message += fitting is { } k
            ? $"Set {nameof(AuxLstmClassifierOptions)}.{nameof(AuxLstmClassifierOptions.TruncationLength)} and " +
              $"{nameof(AuxLstmClassifierOptions.AuxiliaryTruncationLength)} to {k:N0} or less (the paper uses 300), or lower {nameof(AuxLstmClassifierOptions.BatchSize)}."
            : $"Even short truncation lengths do not fit: lower {nameof(AuxLstmClassifierOptions)}.{nameof(AuxLstmClassifierOptions.BatchSize)}, " +
              $"{nameof(AuxLstmClassifierOptions.HiddenSize)} or {nameof(AuxLstmClassifierOptions.SegmentsPerSequence)}.";
        throw new InvalidOperationException(message);
    }

    /// <summary>
    /// Memory this process can still use: the smaller of the system's available memory (Linux: MemAvailable in
    /// /proc/meminfo) and the GC's limit (physical memory or the container's limit) less what the process holds.
    /// </summary>
    public static long AvailableBytes()
    {
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long available = limit > 0 ? Math.Max(0, limit - Environment.WorkingSet) : long.MaxValue;
        if (OperatingSystem.IsLinux() && MemAvailableFromProc() is { } memAvailable)
            available = Math.Min(available, memAvailable);
        return available;
    }

    private static long? MemAvailableFromProc()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    continue;
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    private static double Parameters(NetworkShape s) =>
        (double)(s.Discrete ? s.Vocabulary : s.StepSize + 1) * s.EmbeddingSize
        + 4.0 * s.HiddenSize * (s.EmbeddingSize + s.HiddenSize + 2)
        + (double)s.ClassifierHiddenSize * (s.HiddenSize + s.ClassifierHiddenSize + s.ClassCount + 2) + s.ClassCount;

    private static double DecoderParameters(NetworkShape s, int layers) =>
        (double)(s.Discrete ? s.Vocabulary : s.StepSize + 1) * s.EmbeddingSize
        + 4.0 * s.HiddenSize * (s.EmbeddingSize + s.HiddenSize + 2) + (layers - 1) * 4.0 * s.HiddenSize * (2.0 * s.HiddenSize + 2)
        + (double)s.ClassifierHiddenSize * (s.HiddenSize + 1) + (s.Discrete ? s.Vocabulary : s.StepSize) * (s.ClassifierHiddenSize + 1.0);

    /// <summary>The mean of min(a, <paramref name="k"/>) for a uniform over the integers [<paramref name="low"/>, <paramref name="high"/>].</summary>
    internal static double MeanMin(double low, double high, double k)
    {
        if (high < low)
            return Math.Max(0, Math.Min(low, k));
        if (k >= high)
            return (low + high) / 2;
        if (k <= low)
            return k;
        double below = (k - low + 1) * (low + k) / 2; // a = low .. k
        double above = (high - k) * k;               // a = k + 1 .. high
        return (below + above) / (high - low + 1);
    }

    /// <summary>Rounds down to 2 significant digits (e.g. 1,234 → 1,200).</summary>
    private static int Round(int value)
    {
        if (value < 100)
            return value;
        int unit = (int)Math.Pow(10, Math.Floor(Math.Log10(value)) - 1);
        return value / unit * unit;
    }

    private static string Gib(long bytes) => bytes >= 1L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F1} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F0} MiB");
}
