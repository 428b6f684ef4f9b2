using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>What <see cref="AuxLstmTrainer.Train"/> returns.</summary>
internal sealed record TrainingResult(AuxLstmNetwork Network, IReadOnlyList<EpochReport> Epochs);

/// <summary>One epoch's figures, as reported on the log channel and kept in <see cref="AuxLstmClassifierTransformer.TrainingHistory"/>.</summary>
/// <param name="Epoch">1-based, counted over both phases.</param>
/// <param name="Pretraining">Whether the epoch trained the auxiliary loss only.</param>
/// <param name="SupervisedLoss">Mean training cross-entropy of the labels (0 in pre-training).</param>
/// <param name="AuxiliaryLoss">Mean auxiliary loss per row (0 without one).</param>
/// <param name="TrainAccuracy">Accuracy on the training batches, in training mode (0 in pre-training).</param>
/// <param name="ValidationAccuracy">Accuracy on the validation set, when there is one (joint epochs only).</param>
/// <param name="Elapsed">Wall time of the epoch's training steps.</param>
public sealed record EpochReport(int Epoch, bool Pretraining, double SupervisedLoss, double AuxiliaryLoss, double TrainAccuracy, double? ValidationAccuracy, TimeSpan Elapsed)
{
    /// <summary>Learning rate of the epoch's last step.</summary>
    public double LearningRate { get; init; }

    /// <summary>Scheduled-sampling probability of the epoch's last step.</summary>
    public double SamplingProbability { get; init; }

    /// <summary>Mini-batches trained in the epoch (fewer than a full epoch's when <see cref="AuxLstmClassifierOptions.MaxTrainingTime"/> ran out).</summary>
    public int Batches { get; init; }

    /// <summary>The precision the epoch computed in: <see cref="ComputePrecision.Float32"/> or <see cref="ComputePrecision.BFloat16"/> (what Auto chose).</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;
}

/// <summary>
/// Trains an <see cref="AuxLstmNetwork"/> the way the paper does: optional pre-training on the auxiliary loss only,
/// then joint training of the supervised and auxiliary losses, both with truncated backpropagation
/// (<see cref="TruncatedBptt"/>), anchors sampled per row and step (<see cref="AnchorSampler"/>), an
/// <see cref="AuxiliaryDecoder"/> with scheduled sampling, RMSProp (or Adam), learning-rate halving
/// (<see cref="TrainingSchedule"/>), gradient-norm clipping, best-epoch selection on a validation set and
/// per-epoch checkpoints.
/// </summary>
internal sealed class AuxLstmTrainer
{
    private readonly IHost _host;
    private readonly AuxLstmClassifierOptions _options;
    private readonly int _seed;

    public AuxLstmTrainer(IHost host, AuxLstmClassifierOptions options, int seed)
    {
        _host = host ?? throw new ArgumentNullException(nameof(host));
        _host.CheckValue(options, nameof(options));
        options.Validate();
        _options = options;
        _seed = seed;
    }

    /// <summary>Called after each epoch with its report and the network as it is then (tests watch memory, schedules and weights through it).</summary>
    internal Action<EpochReport, AuxLstmNetwork>? EpochCompleted { get; set; }

    /// <summary>Runs the decoder step by step even without scheduled sampling (tests).</summary>
    internal bool StepwiseDecoder { get; set; }

    /// <summary>
    /// Stops training after this many mini-batches in all (both phases, counted from the run's start, resumed or not),
    /// as <see cref="AuxLstmClassifierOptions.MaxTrainingTime"/> does with time; null: no cap (tests and benchmarks
    /// that compare runs over the same number of steps).
    /// </summary>
    internal long? MaxBatches { get; set; }

    /// <summary>Decoder calls per batch (<see cref="AuxObjective.DecoderGroups"/>); null: its default.</summary>
    internal int? DecoderGroups { get; set; }

    /// <summary>
    /// The modules a run with <paramref name="seed"/> starts from: the network, and the decoder when there is an
    /// auxiliary loss. Initialization draws from torch's global generator, seeded with <paramref name="seed"/> under
    /// <see cref="ProcessState.WithGlobalGenerator{T}"/>'s lock, and left in the state it was in.
    /// </summary>
    internal static (AuxLstmNetwork Network, AuxiliaryDecoder? Decoder) InitializeModules(NetworkShape shape, int seed, int decoderLayers = 2, double? forgetGateBias = null) =>
        ProcessState.WithGlobalGenerator<(AuxLstmNetwork, AuxiliaryDecoder?)>(seed, () =>
        {
            var network = new AuxLstmNetwork(shape);
            try
            {
                if (forgetGateBias is { } bias)
                    network.InitializeForgetGate(bias);
                var decoder = shape.AuxiliaryLoss == AuxiliaryLoss.None ? null : new AuxiliaryDecoder(shape, decoderLayers);
                return (network, decoder);
            }
            catch
            {
                network.Dispose();
                throw;
            }
        });

    /// <summary>
    /// Trains on <paramref name="train"/>: rows in memory (a <see cref="SequenceDataset"/>) or streamed from the data
    /// view every epoch (<see cref="StreamedSequenceRows"/>, whose rows were checked as they were first read).
    /// </summary>
    public TrainingResult Train(ITrainingRows train, SequenceDataset? validation, NetworkShape shape, Device device)
    {
        _host.CheckValue(train, nameof(train));
        _host.CheckValue(shape, nameof(shape));
        if (train is SequenceDataset inMemory)
            CheckData(inMemory, shape, "training");
        else
            CheckKind(train, train.Count, shape, "training");
        if (validation is not null)
            CheckData(validation, shape, "validation");
        if (shape.AuxiliaryLoss != _options.AuxiliaryLoss)
            throw new ArgumentException($"The network shape's auxiliary loss {shape.AuxiliaryLoss} differs from the options' {_options.AuxiliaryLoss}.", nameof(shape));

        using var ch = _host.Start("Training AuxLstm");
        // Threads, denormal flushing and the allocator are put back as they were when the last concurrent Fit returns.
        using var processState = ProcessState.EnterFit(_options.NumberOfThreads, _options.CpuTuning);

        var schedule = new TrainingSchedule(_options, (train.Count + _options.BatchSize - 1) / _options.BatchSize);
        var (network, decoder) = InitializeModules(shape, _seed, _options.DecoderLayers, _options.ForgetGateBias);
        network.SetStandardization(train.Standardization());
        if (train.KeyMap is not null)
            network.ZeroEmbeddingRow(KeyVocabulary.Unknown); // unseen keys carry no information (see KeyVocabulary)
        OptimizerHelper? optimizer = null;
        AuxLstmNetwork? best = null;
        MixedPrecision? mixed = null;
        var generator = new Generator((ulong)_seed, device);
        try
        {
            network.to(device);
            decoder?.to(device);
            var (precision, precisionReason) = MixedPrecision.Resolve(_options.Precision, device);
            ch.Info($"Computing in {(precision == ComputePrecision.BFloat16 ? "bfloat16 (mixed precision: float32 weights, optimizer state and losses)" : "float32")} ({precisionReason}).");
            bool optimizerPretraining = false;
            var progress = new TrainingProgress();
            string fingerprint = Fingerprint(shape, train);
            // One checkpoint per training set: CheckpointFolder/data-<hash of the rows>/checkpoint.bin, so the folds of a
            // cross-validation (or any Fit on other data) sharing the options never resume each other's run.
            string? checkpointFolder = _options.CheckpointFolder is { } root ? CheckpointFolderFor(root, train) : null;
            if (checkpointFolder is { } folder
                && TrainingCheckpoint.TryLoad(folder, fingerprint, network, decoder, _ => CreateOptimizer(network, decoder),
                    schedule.IsPretraining, () => NewNetwork(shape, device)) is { } resumed)
            {
                (progress, optimizer, optimizerPretraining, best) = resumed;
                ch.Info($"Resuming from '{TrainingCheckpoint.PathIn(folder)}' after epoch {progress.EpochsDone} of {schedule.TotalEpochs}.");
            }

            if (precision == ComputePrecision.BFloat16)
                mixed = new MixedPrecision(network, decoder, _options.DecoderLayers, device); // after resuming: it copies the weights
            var objective = new AuxObjective(mixed?.Network ?? network, mixed is null ? decoder : mixed.Decoder, new TruncatedBptt(_options), device)
            {
                StepwiseDecoder = StepwiseDecoder,
                ExactSampling = _options.ExactScheduledSampling,
            };
            if (DecoderGroups is int groups)
                objective.DecoderGroups = groups;
            var sampler = new AnchorSampler(_options);
            int epochNow = progress.EpochsDone, batchNow = 0;
            double lossNow = double.NaN;
            using var pch = _host.StartProgressChannel("Training AuxLstm");
            pch.SetHeader(new ProgressHeader(new[] { "Loss" }, new[] { "Epoch", "Batch" }), e =>
            {
                e.SetProgress(0, epochNow, schedule.TotalEpochs);
                e.SetProgress(1, batchNow, schedule.BatchesPerEpoch);
                e.SetMetric(0, lossNow);
            });

            var budget = Stopwatch.StartNew();
            string? stopped = null;
            for (int epoch = progress.EpochsDone; epoch < schedule.TotalEpochs; epoch++)
            {
                bool pretraining = schedule.IsPretraining(epoch);
                // One optimizer for both phases: RMSProp's running averages carry across the switch to joint training
                // (in pre-training the classifier head simply gets no gradient).
                optimizer ??= CreateOptimizer(network, decoder);
                optimizerPretraining = pretraining;

                // Every random source of an epoch is seeded from (seed, epoch): runs repeat exactly, and resume exactly.
                // Rows in memory are shuffled with rng (a whole permutation, drawn before the first batch); streamed rows
                // are drawn from their shuffle buffer with a stream of their own.
                var rng = new Random((int)(TrainingSchedule.EpochSeed(_seed, epoch, 1) & int.MaxValue));
                generator.manual_seed(TrainingSchedule.EpochSeed(_seed, epoch, 2));
                using var epochBatches = train.Epoch(_options.BatchSize, rng, TrainingSchedule.EpochSeed(_seed, epoch, 3)).GetEnumerator();

                network.train();
                decoder?.train();
                mixed?.Train(true);
                var watch = Stopwatch.StartNew();
                double supervisedSum = 0, auxiliarySum = 0, lr = 0, sampling = 0;
                int correct = 0, seen = 0, labeledSeen = 0;
                epochNow = epoch;
                int batches = 0;
                for (int b = 0; b < schedule.BatchesPerEpoch; b++)
                {
                    _host.CheckAlive();
                    _options.CancellationToken.ThrowIfCancellationRequested();
                    if (_options.MaxTrainingTime is { } limit && budget.Elapsed >= limit)
                    {
                        stopped = $"Stopped after {budget.Elapsed.TotalSeconds:F0} s: {nameof(AuxLstmClassifierOptions.MaxTrainingTime)} reached.";
                        break;
                    }
                    if (MaxBatches is { } cap && progress.GlobalStep >= cap)
                    {
                        stopped = $"Stopped after {progress.GlobalStep:N0} mini-batches, the cap of this run.";
                        break;
                    }

                    batchNow = b;
                    if (!epochBatches.MoveNext())
                        throw new InvalidOperationException($"Epoch {epoch + 1} ended after {b} of {schedule.BatchesPerEpoch} mini-batches.");
                    var batch = epochBatches.Current;
                    int count = batch.Count;
                    var segments = sampler.Sample(batch.Lengths, rng);
                    lr = schedule.LearningRate(epoch, b);
                    sampling = schedule.SamplingProbability(progress.GlobalStep);
                    foreach (var group in optimizer.ParamGroups)
                        group.LearningRate = lr;

                    using (var scope = NewDisposeScope())
                    {
                        mixed?.PullWeights();
                        var losses = objective.Compute(batch, segments, !pretraining, sampling, generator);
                        var total = losses.Total;
                        if (total is not null)
                        {
                            float value = total.item<float>();
                            if (!float.IsFinite(value))
                                throw Diverged(epoch, b, $"the {(pretraining ? "auxiliary" : "training")} loss is {value}");
                            optimizer.zero_grad();
                            mixed?.ZeroGradients();
                            total.backward();
                            mixed?.PushGradients();
                            if (_options.GradientClipNorm > 0)
                            {
                                double norm = nn.utils.clip_grad_norm_(optimizer.parameters(), _options.GradientClipNorm);
                                if (!double.IsFinite(norm))
                                    throw Diverged(epoch, b, $"the gradient norm is {norm}");
                            }
                            optimizer.step();
                            lossNow = value;
                        }

                        if (losses.Supervised is not null)
                        {
                            // Only the batch's labeled rows have logits (unlabeled rows train the auxiliary loss only).
                            var labeledLabels = batch.Labels.Where(l => l >= 0).ToArray();
                            supervisedSum += losses.Supervised.item<float>() * labeledLabels.Length;
                            using var labels = tensor(labeledLabels, device: device);
                            correct += (int)losses.Logits!.argmax(1).eq(labels).sum().item<long>();
                            labeledSeen += labeledLabels.Length;
                        }
                        if (losses.Auxiliary is not null)
                            auxiliarySum += losses.Auxiliary.item<float>() * count;
                        seen += count;
                    }
                    progress.GlobalStep++;
                    batches++;
                }
                watch.Stop();
                if (batches == 0)
                    break;

                double? validationAccuracy = null;
                if (!pretraining && validation is not null)
                {
                    validationAccuracy = Accuracy(network, validation, device);
                    if (progress.BestAccuracy is null || validationAccuracy > progress.BestAccuracy)
                    {
                        progress.BestAccuracy = validationAccuracy;
                        progress.BestEpoch = epoch + 1;
                        best ??= NewNetwork(shape, device);
                        CopyWeights(network, best);
                    }
                }

                var report = new EpochReport(epoch + 1, pretraining, pretraining || labeledSeen == 0 ? 0 : supervisedSum / labeledSeen, auxiliarySum / seen,
                    pretraining || labeledSeen == 0 ? 0 : (double)correct / labeledSeen, validationAccuracy, watch.Elapsed)
                { LearningRate = lr, SamplingProbability = sampling, Batches = batches, Precision = precision };
                progress.Reports.Add(report);
                progress.EpochsDone = epoch + 1;
                ch.Info(Describe(report, schedule));
                if (checkpointFolder is not null)
                    TrainingCheckpoint.Save(checkpointFolder, fingerprint, progress, network, decoder, optimizer, optimizerPretraining, best);
                EpochCompleted?.Invoke(report, network);
                if (stopped is not null)
                {
                    ch.Info(stopped);
                    break;
                }
            }

            if (best is not null)
            {
                CopyWeights(best, network);
                ch.Info($"Kept the weights of epoch {progress.BestEpoch} (validation accuracy {progress.BestAccuracy:P2}).");
            }
            network.eval();
            return new TrainingResult(network, progress.Reports.ToArray());
        }
        catch
        {
            network.Dispose();
            throw;
        }
        finally
        {
            mixed?.Dispose();
            decoder?.Dispose();
            optimizer?.Dispose();
            best?.Dispose();
            generator.Dispose();
        }
    }

    private OptimizerHelper CreateOptimizer(AuxLstmNetwork network, AuxiliaryDecoder? decoder)
    {
        // Every parameter, in both phases: pre-training's loss gives the classifier head no gradient, so it stays
        // untouched (RMSProp skips parameters without a gradient).
        var parameters = network.parameters().Concat(decoder?.parameters() ?? Enumerable.Empty<Parameter>()).ToList();
        return _options.Optimizer == AuxOptimizer.Adam
            ? optim.Adam(parameters, _options.LearningRate)
            : optim.RMSProp(parameters, _options.LearningRate);
    }

    private static AuxLstmNetwork NewNetwork(NetworkShape shape, Device device)
    {
        // Its initial weights are overwritten: drawn apart from the global generator's stream, which is left as it was.
        var network = ProcessState.WithGlobalGenerator(null, () => new AuxLstmNetwork(shape));
        network.to(device);
        return network;
    }

    private static void CopyWeights(AuxLstmNetwork from, AuxLstmNetwork to)
    {
        using var noGrad = no_grad();
        foreach (var (source, target) in from.parameters().Zip(to.parameters()))
            target.copy_(source);
    }

    /// <summary>Accuracy of the network on the labelled rows of a data set, scored in batches.</summary>
    internal double Accuracy(AuxLstmNetwork network, SequenceDataset data, Device device)
    {
        int correct = 0, labelled = 0;
        int classes = network.Shape.ClassCount;
        var rows = new int[Math.Min(_options.ScoringBatchSize, data.Count)];
        for (int start = 0; start < data.Count; start += rows.Length)
        {
            _host.CheckAlive();
            _options.CancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(rows.Length, data.Count - start);
            for (int i = 0; i < count; i++)
                rows[i] = start + i;
            var batch = data.GetBatch(rows.AsSpan(0, count));
            var probabilities = network.PredictProbabilities(batch, device);
            for (int i = 0; i < count; i++)
            {
                if (batch.Labels[i] < 0)
                    continue;
                labelled++;
                int argmax = 0;
                for (int k = 1; k < classes; k++)
                {
                    if (probabilities[i * classes + k] > probabilities[i * classes + argmax])
                        argmax = k;
                }
                if (argmax == batch.Labels[i])
                    correct++;
            }
        }
        return labelled == 0 ? 0 : (double)correct / labelled;
    }

    private static void CheckKind(ITrainingRows data, int count, NetworkShape shape, string which)
    {
        if (count == 0)
            throw new InvalidOperationException($"The {which} data has no rows.");
        if (data.IsDiscrete != shape.Discrete)
            throw new ArgumentException($"The {which} data holds {(data.IsDiscrete ? "tokens" : "values")} but the network reads {(shape.Discrete ? "tokens" : "values")}.");
        if (!data.IsDiscrete && data.StepSize != shape.StepSize)
            throw new ArgumentException($"The {which} data has {data.StepSize} values per step but {nameof(AuxLstmClassifierOptions.StepSize)} is {shape.StepSize}.");
    }

    private void CheckData(SequenceDataset data, NetworkShape shape, string which)
    {
        CheckKind(data, data.Count, shape, which);
        for (int i = 0; i < data.Count; i++)
        {
            if (data.Length(i) < 1)
                throw new ArgumentException($"Row {i} of the {which} data ('{_options.SequenceColumnName}') is empty; every sequence needs at least one step.");
            int label = data.Labels[i];
            // Unlabeled training rows train the auxiliary loss only: they need one.
            bool missingAllowed = which != "training" || _options.AuxiliaryLoss != AuxiliaryLoss.None;
            if (label >= shape.ClassCount || (label < 0 && !missingAllowed))
                throw new ArgumentException(label < 0
                    ? $"Row {i} of the {which} data has no label in '{_options.LabelColumnName}'."
                    : $"Row {i} of the {which} data has label index {label} in '{_options.LabelColumnName}', outside 0..{shape.ClassCount - 1}.");
        }
    }

    private static InvalidOperationException Diverged(int epoch, int batch, string what) =>
        new($"Training diverged in epoch {epoch + 1}, batch {batch + 1}: {what}. Lower " +
            $"{nameof(AuxLstmClassifierOptions)}.{nameof(AuxLstmClassifierOptions.LearningRate)} or keep " +
            $"{nameof(AuxLstmClassifierOptions.GradientClipNorm)} on.");

    private static string Describe(EpochReport r, TrainingSchedule schedule)
    {
        string phase = r.Pretraining ? "pre-training" : "joint";
        string figures = r.Pretraining
            ? $"auxiliary loss {r.AuxiliaryLoss:F4}"
            : $"loss {r.SupervisedLoss:F4}, auxiliary loss {r.AuxiliaryLoss:F4}, train accuracy {r.TrainAccuracy:P1}";
        string validation = r.ValidationAccuracy is { } v ? $", validation accuracy {v:P2}" : "";
        return $"Epoch {r.Epoch}/{schedule.TotalEpochs} ({phase}): {figures}{validation}, learning rate {r.LearningRate:G3}, " +
               $"{r.Elapsed.TotalSeconds:F1} s ({r.Elapsed.TotalMilliseconds / schedule.BatchesPerEpoch:F0} ms per batch)";
    }

    /// <summary>The folder of the checkpoint of a run on <paramref name="train"/> under <see cref="AuxLstmClassifierOptions.CheckpointFolder"/>.</summary>
    internal static string CheckpointFolderFor(string root, ITrainingRows train) => Path.Combine(root, "data-" + train.ContentHash());

    /// <summary>What a checkpoint must match to be resumed: the data's size, the shape and every option that changes training but the epoch count.</summary>
    private string Fingerprint(NetworkShape shape, ITrainingRows train)
    {
        var o = _options;
        string keys = train.KeyMap is { } map ? $"; {map.Keys.Count} keys of {map.KeyCount}" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{shape}{keys}; seed {_seed}; rows {train.Count}; truncation {o.TruncationLength?.ToString(CultureInfo.InvariantCulture) ?? "full"}/" +
            $"{o.AuxiliaryTruncationLength?.ToString(CultureInfo.InvariantCulture) ?? "full"}; segment {o.SegmentLength}x{o.SegmentsPerSequence} " +
            $"reverse {o.ReverseReconstruction} past {o.DistantPastRange} spill {o.SpillPastAnchor}; decoder layers {o.DecoderLayers}; sampling {o.ScheduledSamplingProbability:R}/{o.ScheduledSamplingSteps}; " +
            $"forget bias {o.ForgetGateBias?.ToString("R", CultureInfo.InvariantCulture) ?? "default"}; pretrain {o.PretrainEpochs}; batch {o.BatchSize}; {o.Optimizer} {o.LearningRate:R} halving {o.LearningRateHalvingEpochs}; clip {o.GradientClipNorm:R}");
    }
}
