namespace Microsoft.ML.AuxRnn;

/// <summary>Which unsupervised auxiliary loss trains the main LSTM besides the labels.</summary>
public enum AuxiliaryLoss
{
    /// <summary>No auxiliary loss: the plain LSTM baseline.</summary>
    None,

    /// <summary>r-LSTM: a decoder reconstructs a segment of the input before each anchor.</summary>
    Reconstruct,

    /// <summary>p-LSTM: a decoder stacked on the main LSTM predicts the segment after each anchor.</summary>
    Predict,
}

/// <summary>
/// What <c>Fit</c> may change in the host process to train faster on the CPU (<see cref="AuxLstmClassifierOptions.CpuTuning"/>).
/// Whatever it changes is put back when the last concurrent <c>Fit</c> returns.
/// </summary>
public enum CpuTuningMode
{
    /// <summary>
    /// Flush denormal floats to zero on the training thread (several times faster truncated backpropagation); the
    /// thread's floating-point environment is restored when <c>Fit</c> returns.
    /// </summary>
    Default,

    /// <summary>Nothing: the process runs as it was configured (also forced by the environment variable <c>AUXRNN_CPU_TUNING=off</c>).</summary>
    Off,

    /// <summary>
    /// As <see cref="Default"/>, and glibc also keeps freed memory and serves large blocks from the heap while training
    /// (about 25 % faster r-LSTM steps without huge pages). glibc cannot report its allocator settings, and its
    /// adaptive mmap threshold stays off once a threshold is set, so on return the thresholds are set to the values
    /// that adaptive threshold reaches in a process that frees large blocks (mmap above 32 MiB, trim above 64 MiB):
    /// choose this only when no other code of the process tunes malloc. Skipped when the process sets
    /// <c>MALLOC_*</c> variables.
    /// </summary>
    RetainFreedMemory,
}

/// <summary>Where the network trains and scores.</summary>
public enum ComputeDevice
{
    /// <summary>
    /// As ML.NET's TorchSharp trainers: the GPU <c>MLContext.GpuDeviceId</c> names when it is set and CUDA is
    /// available; when it is set but CUDA is not, the CPU if <c>MLContext.FallbackToCpu</c>, else an error; the CPU
    /// when it is not set.
    /// </summary>
    Auto,

    /// <summary>The CPU.</summary>
    Cpu,

    /// <summary>A CUDA GPU, device <c>MLContext.GpuDeviceId</c> (0 when not set; needs a TorchSharp CUDA backend); fails when none is available.</summary>
    Cuda,
}

/// <summary>The number format training computes in (<see cref="AuxLstmClassifierOptions.Precision"/>).</summary>
public enum ComputePrecision
{
    /// <summary>
    /// bfloat16 where the device computes it fast (a CPU with AMX or AVX-512 BF16, a CUDA GPU of compute capability 8.0
    /// or later), float32 elsewhere. What was chosen is logged when <c>Fit</c> starts and recorded in each
    /// <see cref="Training.EpochReport.Precision"/>.
    /// </summary>
    Auto,

    /// <summary>Everything in float32.</summary>
    Float32,

    /// <summary>
    /// Mixed precision: the LSTMs, embeddings and linear layers compute in bfloat16 on a bfloat16 copy of the weights,
    /// while the weights themselves (the master copy the optimizer updates and the model saves), the optimizer state,
    /// the losses (softmax, cross-entropy, squared error), the gradients and their clipping stay float32. Scoring is
    /// float32, so a model trained this way loads and scores anywhere.
    /// </summary>
    BFloat16,
}

/// <summary>The optimizer used in both training phases.</summary>
public enum AuxOptimizer
{
    /// <summary>RMSProp, as in the paper.</summary>
    RmsProp,

    /// <summary>Adam.</summary>
    Adam,
}

/// <summary>
/// Options of <c>AuxLstmClassifierEstimator</c>: an LSTM classifier for long sequences trained with the
/// auxiliary losses of Trinh, Dai, Luong and Le (ICML 2018). Every default is the paper's where it gives one.
/// </summary>
public sealed class AuxLstmClassifierOptions
{
    /// <summary>Label column: a key (from <c>MapValueToKey</c>). Default "Label".</summary>
    public string LabelColumnName { get; set; } = Microsoft.ML.Data.DefaultColumnNames.Label;

    /// <summary>
    /// Sequence column: a vector of <see cref="float"/> (known or variable size; cut into steps of
    /// <see cref="StepSize"/> values) or a vector of keys (tokens). Default "Features".
    /// </summary>
    public string SequenceColumnName { get; set; } = Microsoft.ML.Data.DefaultColumnNames.Features;

    /// <summary>Output column with the predicted label, of the label's key type. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; set; } = Microsoft.ML.Data.DefaultColumnNames.PredictedLabel;

    /// <summary>Output column with the class probabilities (summing to 1). Default "Score".</summary>
    public string ScoreColumnName { get; set; } = Microsoft.ML.Data.DefaultColumnNames.Score;

    /// <summary>
    /// Optional output column with each row's sequence embedding: the main LSTM's hidden state after the row's last
    /// step (a vector of <see cref="HiddenSize"/> Single), for a downstream trainer or a similarity search.
    /// <c>null</c> (default): no such column.
    /// </summary>
    public string? EmbeddingColumnName { get; set; }

    /// <summary>Values per time step of a float sequence: 1 (default) for grey pixels, 3 for interleaved RGB.</summary>
    public int StepSize { get; set; } = 1;

    /// <summary>
    /// 0 (default): float values are continuous and projected linearly to <see cref="EmbeddingSize"/>.
    /// N &gt; 0: float values are integer levels 0..N−1 embedded as tokens (256 for pixel intensities, as in the
    /// paper); needs <see cref="StepSize"/> = 1. Ignored for key-typed sequences, whose vocabulary is the keys that
    /// occur in the training rows (plus the missing key and one token for keys unseen in training).
    /// </summary>
    public int InputLevels { get; set; }

    /// <summary>Cells of the main LSTM (and of the auxiliary decoder). Default 128.</summary>
    public int HiddenSize { get; set; } = 128;

    /// <summary>Size of the token embedding or of the linear input projection. Default 128.</summary>
    public int EmbeddingSize { get; set; } = 128;

    /// <summary>Hidden units of each of the classifier's two feed-forward layers (and the decoder's output head). Default 256.</summary>
    public int ClassifierHiddenSize { get; set; } = 256;

    /// <summary>DropConnect probability on the classifier's second layer. Default 0.5.</summary>
    public double DropConnect { get; set; } = 0.5;

    /// <summary>The auxiliary loss. Default <see cref="AuxiliaryLoss.Reconstruct"/> (r-LSTM).</summary>
    public AuxiliaryLoss AuxiliaryLoss { get; set; } = AuxiliaryLoss.Reconstruct;

    /// <summary>
    /// Steps, counted back from each row's last step, through which the supervised gradient flows into the LSTM.
    /// Default 300. <c>null</c>: full backpropagation through time. 0: the labels train only the classifier head.
    /// </summary>
    public int? TruncationLength { get; set; } = 300;

    /// <summary>
    /// Steps before each anchor through which an auxiliary loss flows into the main LSTM. Default 300.
    /// <c>null</c>: back to the sequence's start.
    /// </summary>
    public int? AuxiliaryTruncationLength { get; set; } = 300;

    /// <summary>Length l of each reconstructed or predicted segment. Default 600 (the paper's).</summary>
    public int SegmentLength { get; set; } = 600;

    /// <summary>Anchors sampled per sequence and training step. Default 1.</summary>
    public int SegmentsPerSequence { get; set; } = 1;

    /// <summary>r-LSTM: reconstruct the segment in reverse order (default true; the ablation's winner).</summary>
    public bool ReverseReconstruction { get; set; } = true;

    /// <summary>
    /// r-LSTM: the reconstructed segment's end is sampled uniformly up to this many steps before the anchor
    /// (the ablation's "distant past"). Default 0: the segment ends at the anchor.
    /// </summary>
    public int DistantPastRange { get; set; }

    /// <summary>r-LSTM: up to this many of the segment's steps may lie after the anchor. Default 0.</summary>
    public int SpillPastAnchor { get; set; }

    /// <summary>
    /// Initial bias of the main LSTM's forget gates, or <c>null</c> (default) for TorchSharp's initialisation (uniform
    /// biases around 0, as the paper's implementation would have had). 1 makes a cell keep about 73 % of its content
    /// per step at the start of training (Gers et al. 2000; Jozefowicz et al. 2015): measured here it speeds up learning
    /// on short synthetic recall tasks (docs/results.md) but not on pixel MNIST, hence the default.
    /// </summary>
    public double? ForgetGateBias { get; set; }

    /// <summary>
    /// LSTM layers of the auxiliary decoder: the bottom one starts from the main LSTM's state at the anchor, the
    /// others from zeros. Default 2 (the paper's; "stacking a second layer" helps in its ablation).
    /// </summary>
    public int DecoderLayers { get; set; } = 2;

    /// <summary>Initial probability that a decoder is fed its own prediction instead of the true input. Default 0 (teacher forcing).</summary>
    public double ScheduledSamplingProbability { get; set; }

    /// <summary>
    /// Training steps (mini-batches, both phases counted) over which <see cref="ScheduledSamplingProbability"/>
    /// anneals linearly to zero. Default 10,000.
    /// </summary>
    public int ScheduledSamplingSteps { get; set; } = 10_000;

    /// <summary>
    /// How scheduled sampling feeds a decoder its own predictions. Default false: in two fused passes (a teacher-forced
    /// pass gives the predictions, a second reads inputs mixed from the truth and those predictions), so a fed-back
    /// prediction comes from the teacher-forced history. True: step by step, each prediction made from the history the
    /// decoder itself was fed (the exact procedure, several times slower). docs/results.md compares the two.
    /// </summary>
    public bool ExactScheduledSampling { get; set; }

    /// <summary>Epochs of auxiliary loss only, before joint training. Default 0. Ignored without an auxiliary loss.</summary>
    public int PretrainEpochs { get; set; }

    /// <summary>Epochs of joint (supervised + auxiliary) training. Default 10.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Sequences per mini-batch. Default 128 (the paper's).</summary>
    public int BatchSize { get; set; } = 128;

    /// <summary>Initial learning rate. Default 1e-3.</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>The optimizer. Default <see cref="AuxOptimizer.RmsProp"/> (the paper's).</summary>
    public AuxOptimizer Optimizer { get; set; } = AuxOptimizer.RmsProp;

    /// <summary>
    /// After pre-training, the learning rate is halved every this many epochs; 0 (default) never. Pre-training
    /// always halves it once halfway through (counted in steps); joint training starts again from
    /// <see cref="LearningRate"/>.
    /// </summary>
    public int LearningRateHalvingEpochs { get; set; }

    /// <summary>Gradients are rescaled so that their global L2 norm is at most this. Default 1. 0 turns clipping off.</summary>
    public double GradientClipNorm { get; set; } = 1.0;

    /// <summary>Random seed for weights, shuffling and anchors. <c>null</c> (default): drawn from the MLContext's seed.</summary>
    public int? Seed { get; set; }

    /// <summary>
    /// Where to train (and where the trained transformer scores). Default <see cref="ComputeDevice.Auto"/>: the
    /// MLContext's <c>GpuDeviceId</c> and <c>FallbackToCpu</c> decide. A saved model, once loaded, scores where its
    /// loading MLContext says.
    /// </summary>
    public ComputeDevice Device { get; set; } = ComputeDevice.Auto;

    /// <summary>
    /// The number format training computes in; default <see cref="ComputePrecision.Auto"/>: bfloat16 mixed precision
    /// on a CPU with AMX or AVX-512 BF16, float32 elsewhere. <see cref="ComputePrecision.BFloat16"/> is mixed precision
    /// (float32 weights, optimizer state and losses); measured on pixel MNIST it reaches float32's accuracy at equal
    /// epochs (the mean of three seeds) in 0.6–0.7× the time (docs/results.md). Scoring is always float32.
    /// </summary>
    public ComputePrecision Precision { get; set; } = ComputePrecision.Auto;

    /// <summary>
    /// Optional held-out data with the same columns: each epoch is scored on it and the best epoch's weights are kept.
    /// It is read into memory whatever its size (<see cref="ShuffleBufferMegabytes"/> bounds the training rows only).
    /// </summary>
    public IDataView? ValidationSet { get; set; }

    /// <summary>
    /// Memory, in MiB, for the training rows (4 bytes per value or token, plus 48 per row). Default 1,024. Training data
    /// that fits is read into memory once and shuffled as a whole every epoch. Larger data is not materialised:
    /// <c>Fit</c> makes one pass to check and count it (and the standardisation statistics), then every epoch reads it
    /// again through a fresh cursor into a shuffle buffer of this size, drawing each mini-batch's rows from the buffer
    /// at random (seeded per epoch from <see cref="Seed"/>). Memory then stays bounded by the buffer and the batch
    /// whatever the number of rows, but the shuffle is local: a row never comes out more than a buffer's worth of rows
    /// before its place in the data, so data sorted by label should be shuffled beforehand (or given a buffer that
    /// holds it). The data view must yield the same rows in the same order on every cursor. <see cref="ValidationSet"/>
    /// is always held in memory. Key sequences held in memory get a vocabulary of the keys they use; streamed ones keep
    /// the column's key count as their vocabulary (a dense one would need another pass).
    /// </summary>
    public int ShuffleBufferMegabytes { get; set; } = 1024;

    /// <summary>Rows scored together by <c>Transform</c>. Default 256.</summary>
    public int ScoringBatchSize { get; set; } = 256;

    /// <summary>
    /// Intra-op threads for libtorch on the CPU while <c>Fit</c> runs (libtorch's count is process-wide; the count it
    /// had is restored when the last concurrent <c>Fit</c> returns). <c>null</c> (default): leave it as it is.
    /// </summary>
    public int? NumberOfThreads { get; set; }

    /// <summary>
    /// What <c>Fit</c> may change in the process to train faster on the CPU; default <see cref="CpuTuningMode.Default"/>
    /// (denormals flushed on the training thread). The environment variable <c>AUXRNN_CPU_TUNING=off</c> turns all of it off.
    /// </summary>
    public CpuTuningMode CpuTuning { get; set; } = CpuTuningMode.Default;

    /// <summary>
    /// Optional time budget for training: once this much time has passed, training stops after the current
    /// mini-batch (the epoch so far is reported and, with a validation set, scored). <c>null</c> (default): no limit.
    /// </summary>
    public TimeSpan? MaxTrainingTime { get; set; }

    /// <summary>
    /// Cancels <c>Fit</c>: once the token is cancelled, training stops at the next mini-batch (training or validation
    /// scoring; a token cancelled before Fit stops it at once), frees its native memory and throws
    /// <see cref="OperationCanceledException"/>. Works wherever the estimator is fitted: alone, inside a pipeline, in
    /// <c>CrossValidate</c>. (ML.NET's own <c>MLContext.CancelExecution</c> is internal in ML.NET 5.) Not saved with the model.
    /// </summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>
    /// Optional folder for per-epoch checkpoints; a later Fit given the same folder, data and options resumes from the
    /// last one. Each training set keeps its own checkpoint in a sub-folder named after a hash of its rows
    /// (<c>data-&lt;hash&gt;/checkpoint.bin</c>), so the folds of <c>CrossValidate</c> can share the folder. With data
    /// larger than <see cref="ShuffleBufferMegabytes"/> the hash costs two more passes over the data before training.
    /// </summary>
    public string? CheckpointFolder { get; set; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> or <see cref="ArgumentException"/> naming the first invalid member.</summary>
    public void Validate()
    {
        static void Require(bool ok, string member, object? value, string rule)
        {
            if (!ok)
                throw new ArgumentOutOfRangeException(member, value, $"{nameof(AuxLstmClassifierOptions)}.{member} {rule}.");
        }

        static void RequireName(string? name, string member)
        {
            if (string.IsNullOrWhiteSpace(name))
                throw new ArgumentException($"{nameof(AuxLstmClassifierOptions)}.{member} must name a column.", member);
        }

        RequireName(LabelColumnName, nameof(LabelColumnName));
        RequireName(SequenceColumnName, nameof(SequenceColumnName));
        RequireName(PredictedLabelColumnName, nameof(PredictedLabelColumnName));
        RequireName(ScoreColumnName, nameof(ScoreColumnName));
        if (PredictedLabelColumnName == ScoreColumnName)
            throw new ArgumentException($"{nameof(PredictedLabelColumnName)} and {nameof(ScoreColumnName)} must differ.", nameof(ScoreColumnName));
        if (EmbeddingColumnName is not null)
        {
            RequireName(EmbeddingColumnName, nameof(EmbeddingColumnName));
            if (EmbeddingColumnName == PredictedLabelColumnName || EmbeddingColumnName == ScoreColumnName)
                throw new ArgumentException($"{nameof(AuxLstmClassifierOptions)}.{nameof(EmbeddingColumnName)} must differ from {nameof(PredictedLabelColumnName)} and {nameof(ScoreColumnName)}.", nameof(EmbeddingColumnName));
        }

        Require(StepSize is >= 1 and <= Data.SequenceInputType.MaxStepSize, nameof(StepSize), StepSize, "must be between 1 and 1,000,000");
        Require(InputLevels is >= 0 and <= Data.SequenceInputType.MaxVocabulary, nameof(InputLevels), InputLevels, "must be 0 (continuous) or a number of levels up to 16,777,215");
        Require(InputLevels == 0 || StepSize == 1, nameof(InputLevels), InputLevels, "needs StepSize = 1 (each value becomes one token)");
        Require(HiddenSize is >= 1 and <= 65_536, nameof(HiddenSize), HiddenSize, "must be between 1 and 65,536");
        Require(EmbeddingSize is >= 1 and <= 65_536, nameof(EmbeddingSize), EmbeddingSize, "must be between 1 and 65,536");
        Require(ClassifierHiddenSize is >= 1 and <= 65_536, nameof(ClassifierHiddenSize), ClassifierHiddenSize, "must be between 1 and 65,536");
        Require(DropConnect is >= 0 and < 1, nameof(DropConnect), DropConnect, "must be in [0, 1)");
        Require(Enum.IsDefined(AuxiliaryLoss), nameof(AuxiliaryLoss), AuxiliaryLoss, "is not a defined value");
        Require(TruncationLength is null or >= 0, nameof(TruncationLength), TruncationLength, "must be null (full BPTT) or at least 0");
        Require(AuxiliaryTruncationLength is null or >= 0, nameof(AuxiliaryTruncationLength), AuxiliaryTruncationLength, "must be null (full BPTT) or at least 0");
        Require(SegmentLength >= 2, nameof(SegmentLength), SegmentLength, "must be at least 2");
        Require(SegmentsPerSequence is >= 1 and <= MaxSegmentsPerSequence, nameof(SegmentsPerSequence), SegmentsPerSequence, "must be between 1 and 1,024");
        Require(DistantPastRange >= 0, nameof(DistantPastRange), DistantPastRange, "must be at least 0");
        Require(SpillPastAnchor >= 0 && SpillPastAnchor < SegmentLength, nameof(SpillPastAnchor), SpillPastAnchor, "must be at least 0 and less than SegmentLength");
        Require(ForgetGateBias is null || (double.IsFinite(ForgetGateBias.Value) && Math.Abs(ForgetGateBias.Value) <= 100), nameof(ForgetGateBias), ForgetGateBias, "must be null or a number between -100 and 100");
        Require(DecoderLayers is >= 1 and <= 8, nameof(DecoderLayers), DecoderLayers, "must be between 1 and 8");
        Require(ScheduledSamplingProbability is >= 0 and <= 1, nameof(ScheduledSamplingProbability), ScheduledSamplingProbability, "must be in [0, 1]");
        Require(ScheduledSamplingSteps >= 1, nameof(ScheduledSamplingSteps), ScheduledSamplingSteps, "must be at least 1");
        Require(PretrainEpochs >= 0, nameof(PretrainEpochs), PretrainEpochs, "must be at least 0");
        Require(Epochs >= 0, nameof(Epochs), Epochs, "must be at least 0");
        Require(Epochs + PretrainEpochs >= 1, nameof(Epochs), Epochs, "plus PretrainEpochs must be at least 1");
        Require(BatchSize is >= 1 and <= MaxBatchSize, nameof(BatchSize), BatchSize, "must be between 1 and 1,048,576");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "must be a positive number");
        Require(Enum.IsDefined(Optimizer), nameof(Optimizer), Optimizer, "is not a defined value");
        Require(LearningRateHalvingEpochs >= 0, nameof(LearningRateHalvingEpochs), LearningRateHalvingEpochs, "must be at least 0");
        Require(GradientClipNorm >= 0 && double.IsFinite(GradientClipNorm), nameof(GradientClipNorm), GradientClipNorm, "must be 0 (off) or positive");
        Require(Enum.IsDefined(Device), nameof(Device), Device, "is not a defined value");
        Require(Enum.IsDefined(Precision), nameof(Precision), Precision, "is not a defined value");
        Require(ShuffleBufferMegabytes is >= 1 and <= MaxShuffleBufferMegabytes, nameof(ShuffleBufferMegabytes), ShuffleBufferMegabytes, "must be between 1 and 1,048,576 (MiB)");
        Require(ScoringBatchSize is >= 1 and <= MaxBatchSize, nameof(ScoringBatchSize), ScoringBatchSize, "must be between 1 and 1,048,576");
        Require(MaxTrainingTime is null || MaxTrainingTime > TimeSpan.Zero, nameof(MaxTrainingTime), MaxTrainingTime, "must be null or positive");
        Require(NumberOfThreads is null or (>= 1 and <= MaxThreads), nameof(NumberOfThreads), NumberOfThreads, "must be null or between 1 and 1,024");
        Require(Enum.IsDefined(CpuTuning), nameof(CpuTuning), CpuTuning, "is not a defined value");
        if (CheckpointFolder is not null && (string.IsNullOrWhiteSpace(CheckpointFolder) || CheckpointFolder.IndexOfAny(Path.GetInvalidPathChars()) >= 0))
            throw new ArgumentException($"{nameof(AuxLstmClassifierOptions)}.{nameof(CheckpointFolder)} must be null or a folder path.", nameof(CheckpointFolder));
    }

    /// <summary>Largest <see cref="BatchSize"/> and <see cref="ScoringBatchSize"/> (also what a loaded model may claim).</summary>
    internal const int MaxBatchSize = 1 << 20;

    /// <summary>Largest <see cref="ShuffleBufferMegabytes"/> (1 TiB).</summary>
    internal const int MaxShuffleBufferMegabytes = 1 << 20;

    /// <summary>Largest <see cref="SegmentsPerSequence"/>.</summary>
    internal const int MaxSegmentsPerSequence = 1024;

    /// <summary>Largest <see cref="NumberOfThreads"/>.</summary>
    internal const int MaxThreads = 1024;

    /// <summary>A shallow copy (the validation set is shared).</summary>
    public AuxLstmClassifierOptions Clone() => (AuxLstmClassifierOptions)MemberwiseClone();
}
