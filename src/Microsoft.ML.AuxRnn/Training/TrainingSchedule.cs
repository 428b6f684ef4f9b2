namespace Microsoft.ML.AuxRnn.Training;

/// <summary>
/// The two phases and the schedules of training: which epochs pre-train, the learning rate of every step and the
/// decoders' scheduled-sampling probability.
/// </summary>
/// <remarks>
/// Epochs are numbered 0.. over both phases: first <see cref="PretrainEpochs"/> of auxiliary loss only (none
/// without an auxiliary loss), then <see cref="AuxLstmClassifierOptions.Epochs"/> of joint training.
/// Learning rate: the initial rate, halved once halfway (in steps) through pre-training; joint training starts
/// again from the initial rate and halves it after every <see cref="AuxLstmClassifierOptions.LearningRateHalvingEpochs"/>
/// epochs. Scheduled sampling: p(step) = p₀ · max(0, 1 − step / N), step counted over both phases.
/// </remarks>
internal sealed class TrainingSchedule
{
    private readonly double _learningRate;
    private readonly int _halvingEpochs;
    private readonly double _sampling;
    private readonly int _samplingSteps;

    public TrainingSchedule(AuxLstmClassifierOptions options, int batchesPerEpoch)
    {
        if (batchesPerEpoch < 1)
            throw new ArgumentOutOfRangeException(nameof(batchesPerEpoch));
        PretrainEpochs = options.AuxiliaryLoss == AuxiliaryLoss.None ? 0 : options.PretrainEpochs;
        JointEpochs = options.Epochs;
        BatchesPerEpoch = batchesPerEpoch;
        _learningRate = options.LearningRate;
        _halvingEpochs = options.LearningRateHalvingEpochs;
        _sampling = options.AuxiliaryLoss == AuxiliaryLoss.None ? 0 : options.ScheduledSamplingProbability;
        _samplingSteps = options.ScheduledSamplingSteps;
    }

    public int PretrainEpochs { get; }

    public int JointEpochs { get; }

    public int TotalEpochs => PretrainEpochs + JointEpochs;

    public int BatchesPerEpoch { get; }

    public bool IsPretraining(int epoch) => epoch < PretrainEpochs;

    /// <summary>The learning rate of batch <paramref name="batch"/> of epoch <paramref name="epoch"/> (both 0-based).</summary>
    public double LearningRate(int epoch, int batch)
    {
        if (IsPretraining(epoch))
        {
            long step = (long)epoch * BatchesPerEpoch + batch;
            long total = (long)PretrainEpochs * BatchesPerEpoch;
            return total >= 2 && step >= total / 2 ? _learningRate / 2 : _learningRate;
        }

        int joint = epoch - PretrainEpochs;
        return _halvingEpochs > 0 ? _learningRate * Math.Pow(0.5, joint / _halvingEpochs) : _learningRate;
    }

    /// <summary>Probability that a decoder is fed its own prediction at global training step <paramref name="step"/> (0-based).</summary>
    public double SamplingProbability(long step) => _sampling <= 0 ? 0 : _sampling * Math.Max(0, 1 - (double)step / _samplingSteps);

    /// <summary>A seed for epoch <paramref name="epoch"/>'s shuffling, anchors and masks, from the run's seed (SplitMix64).</summary>
    public static long EpochSeed(int seed, int epoch, ulong stream)
    {
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)epoch * 0xBF58476D1CE4E5B9UL + stream * 0x94D049BB133111EBUL + 0x2545F4914F6CDD1DUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (long)(z >> 1);
    }
}
