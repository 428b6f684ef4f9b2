using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Training;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn;

/// <summary>
/// Trains an LSTM classifier for long sequences with the auxiliary losses of Trinh et al. (ICML 2018):
/// <c>mlContext.Transforms.AuxLstmClassifier(...)</c>. Fit reads the sequence column (a vector of Single or of
/// keys) and the key label column through cursors: into memory when the rows fit
/// <see cref="AuxLstmClassifierOptions.ShuffleBufferMegabytes"/>, else once per epoch through a shuffle buffer of
/// that size. It trains with TorchSharp and returns an <see cref="AuxLstmClassifierTransformer"/> that adds
/// PredictedLabel and Score.
/// </summary>
public sealed class AuxLstmClassifierEstimator : IEstimator<AuxLstmClassifierTransformer>
{
    private readonly IHost _host;
    private readonly AuxLstmClassifierOptions _options;

    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the exception names it).</exception>
    internal AuxLstmClassifierEstimator(IHostEnvironment env, AuxLstmClassifierOptions options)
    {
        Contracts.CheckValue(env, nameof(env));
        _host = env.Register(nameof(AuxLstmClassifierEstimator));
        _host.CheckValue(options, nameof(options));
        options.Validate();
        _options = options.Clone();
    }

    /// <summary>A copy of the options this estimator trains with.</summary>
    public AuxLstmClassifierOptions Options => _options.Clone();

    /// <summary>
    /// Trains on <paramref name="input"/>. Rows with a missing label (key 0) are skipped; every other row's
    /// sequence must be non-empty and finite. Rows that take more than
    /// <see cref="AuxLstmClassifierOptions.ShuffleBufferMegabytes"/> are not held in memory: a first pass checks and
    /// counts them, and every epoch reads them again (so <paramref name="input"/> must yield the same rows each time). Progress (epoch, losses, accuracy, time) goes to <c>MLContext.Log</c>.
    /// </summary>
    public AuxLstmClassifierTransformer Fit(IDataView input)
    {
        _host.CheckValue(input, nameof(input));
        _options.CancellationToken.ThrowIfCancellationRequested();
        using var ch = _host.Start("Fit");

        var label = CheckLabel(input.Schema);
        var sequence = input.Schema.GetColumnOrNull(_options.SequenceColumnName)
            ?? throw _host.ExceptSchemaMismatch(nameof(input), "sequence", _options.SequenceColumnName);
        var inputType = SequenceInputType.FromColumn(_host, sequence, _options);
        var labels = LabelKeys.FromColumn(label);

        // Semi-supervised: with an auxiliary loss, rows whose label is missing (key 0) train it (in pre-training and in
        // joint training) and are left out of the supervised loss; without one they have nothing to train and are skipped.
        bool keepUnlabeled = _options.AuxiliaryLoss != AuxiliaryLoss.None;
        // One pass over the data: rows that fit the shuffle buffer stay in memory; more than that stream every epoch.
        long bufferBytes = (long)_options.ShuffleBufferMegabytes << 20;
        var train = SequenceColumnReader.ReadForTraining(_host, input, sequence, inputType, label, keepUnlabeled, bufferBytes, out var summary);
        long unlabeled = summary.Unlabeled, labeled = summary.Labeled;
        if (labeled == 0)
            throw _host.Except($"There are no rows to train the classifier on: the data is empty or every label in column '{label.Name}' is missing" +
                (unlabeled > 0 ? $" ({unlabeled:N0} unlabeled rows can train the auxiliary loss, but a classifier needs labeled rows)." : "."));
        if (unlabeled > 0)
        {
            if (keepUnlabeled)
                ch.Info($"{labeled:N0} labeled rows train the classifier and the auxiliary loss; {unlabeled:N0} rows whose label '{label.Name}' is missing train the auxiliary loss only.");
            else
                ch.Warning($"Skipped {unlabeled:N0} rows whose label '{label.Name}' is missing (with {nameof(AuxLstmClassifierOptions.AuxiliaryLoss)} = None they have nothing to train).");
        }
        if (inputType.Kind == SequenceInputKind.Keys && MapKeysToVocabulary && train is SequenceDataset inMemory)
        {
            // The vocabulary follows the keys the training rows use, not the column's key count (65,536 for characters):
            // the embedding and the decoder's output layer get one row per key seen, plus the missing key and unseen keys.
            // Rows streamed through the shuffle buffer (larger than ShuffleBufferMegabytes) keep the raw keys.
            var vocabulary = KeyVocabulary.FromRawKeys(inMemory, inputType.KeyCount);
            inputType = inputType with { KeyMap = vocabulary };
            train = inMemory.MapKeys(vocabulary);
            ch.Info($"Sequence column '{sequence.Name}': {vocabulary.Keys.Count:N0} of its {inputType.KeyCount:N0} keys occur in the training rows; " +
                    $"vocabulary of {vocabulary.Size:N0} tokens (those keys, the missing key and one token for keys unseen in training).");
        }
        int classesSeen = summary.ClassesSeen;
        if (classesSeen < 2)
            throw _host.ExceptParam(nameof(_options.LabelColumnName),
                $"Label column '{label.Name}' has a single class in the {labeled:N0} labeled training rows; a classifier needs at least two.");

        SequenceDataset? validation = null;
        if (_options.ValidationSet is { } validationSet)
        {
            var validationLabel = CheckLabel(validationSet.Schema);
            if (!validationLabel.Type.Equals(label.Type))
                throw _host.ExceptSchemaMismatch(nameof(_options.ValidationSet), "label", label.Name, label.Type.ToString(), validationLabel.Type.ToString());
            if (labels.Mismatch(validationLabel) is { } why)
                throw _host.ExceptParam(nameof(_options.ValidationSet),
                    $"{nameof(AuxLstmClassifierOptions)}.{nameof(_options.ValidationSet)}'s label column '{label.Name}' does not match the training data's: {why}. " +
                    "Key both with the same fitted MapValueToKey.");
            var validationSequence = inputType.CheckColumn(_host, validationSet.Schema, _options.SequenceColumnName);
            validation = SequenceColumnReader.ReadLabeled(_host, validationSet, validationSequence, inputType, validationLabel, out _);
            if (validation.Count == 0)
                throw _host.Except($"{nameof(AuxLstmClassifierOptions)}.{nameof(_options.ValidationSet)} has no labeled rows.");
        }

        _options.CancellationToken.ThrowIfCancellationRequested();
        int seed = _options.Seed ?? _host.Rand.Next();
        var device = TorchDevices.Resolve(_options.Device, _host, ch);
        var shape = NetworkShape.From(_options, inputType.Discrete, inputType.Vocabulary, inputType.NetworkStepSize, labels.ClassCount);
        ch.Info($"AuxLstmClassifier: {train.Count:N0} rows ({labeled:N0} labeled, {train.Count - labeled:N0} unlabeled; {classesSeen} of {labels.ClassCount} classes seen), up to {train.MaxLength:N0} steps, " +
                $"input {inputType.Describe()}, auxiliary loss {_options.AuxiliaryLoss}, device {device.type}, seed {seed}.");
        if (summary.Streamed)
            ch.Info($"The training rows take {summary.Bytes / (1024.0 * 1024):N0} MiB, more than {nameof(AuxLstmClassifierOptions.ShuffleBufferMegabytes)} = {_options.ShuffleBufferMegabytes:N0}: " +
                "each epoch streams them from the data view through a shuffle buffer of that size.");

        // Fail now, not hours into training: the memory a step needs against what the machine has left (less the shuffle
        // buffer that streamed rows will fill, host memory wherever the network trains).
        if (device.type == DeviceType.CPU || summary.Streamed)
        {
            long available = (AvailableMemory ?? MemoryEstimate.AvailableBytes)();
            long step = device.type == DeviceType.CPU ? new MemoryEstimate(_options, shape).Bytes(train.MaxLength) : 0;
            if (summary.Streamed && step <= available && step + bufferBytes > available)
                throw _host.ExceptParam(nameof(_options.ShuffleBufferMegabytes),
                    $"The training rows stream through a shuffle buffer of {nameof(AuxLstmClassifierOptions)}.{nameof(_options.ShuffleBufferMegabytes)} = {_options.ShuffleBufferMegabytes:N0} MiB, " +
                    $"but with a training step's {step / (1024.0 * 1024):N0} MiB only about {Math.Max(0, available - step) / (1024.0 * 1024):N0} MiB are left for it: lower it.");
            if (device.type == DeviceType.CPU)
                new MemoryEstimate(_options, shape).ThrowIfTooLarge(train.MaxLength, summary.Streamed ? available - bufferBytes : available);
        }
        if (_options.CheckpointFolder is { } folder)
            PrepareCheckpointFolder(folder, ch);

        var result = new AuxLstmTrainer(_host, _options, seed) { MaxBatches = MaxBatches, DecoderGroups = DecoderGroups }.Train(train, validation, shape, device);
        if (!AuxLstmClassifierTransformer.AllFinite(result.Network))
        {
            // The loss and the gradient norm are checked at every step; only the very last update can go unnoticed.
            var last = result.Epochs.Count > 0 ? result.Epochs[^1] : null;
            result.Network.Dispose();
            throw _host.Except($"Training diverged in epoch {last?.Epoch}, batch {last?.Batches}: the weights hold NaN or infinite values after the last update. " +
                $"Lower {nameof(AuxLstmClassifierOptions)}.{nameof(_options.LearningRate)} or keep {nameof(_options.GradientClipNorm)} on.");
        }
        return new AuxLstmClassifierTransformer(_host, _options, inputType, labels, result.Network, device, _options.Device, result.Epochs);
    }

    /// <summary>
    /// Whether Fit maps a key column's training keys to a dense <see cref="KeyVocabulary"/> (always, but in tests that
    /// make a model the way versions before it did: key k as token k, a vocabulary of the key count + 1).
    /// </summary>
    internal bool MapKeysToVocabulary { get; set; } = true;

    /// <summary>What <see cref="Fit"/> takes as the memory available for training; null: the machine's (tests inject small figures).</summary>
    internal Func<long>? AvailableMemory { get; set; }

    /// <summary>Stops training after this many mini-batches in all; null: no cap (tests and benchmarks that compare runs step for step).</summary>
    internal long? MaxBatches { get; set; }

    /// <summary>Decoder calls per batch (see AuxObjective.DecoderGroups; null: its default). Benchmarks compare them.</summary>
    internal int? DecoderGroups { get; set; }

    /// <summary>Creates the checkpoint folder before training, so that a bad path fails now rather than after the first epoch.</summary>
    private void PrepareCheckpointFolder(string folder, IChannel ch)
    {
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ArgumentException(
                $"{nameof(AuxLstmClassifierOptions)}.{nameof(_options.CheckpointFolder)} '{folder}' cannot be used as a folder: {e.Message}",
                nameof(_options.CheckpointFolder), e);
        }
        foreach (string stale in TrainingCheckpoint.RemoveStaleTemporaries(folder))
            ch.Info($"Removed '{stale}', a checkpoint that a killed training process left half-written.");
    }

    /// <summary>
    /// The input schema plus PredictedLabel (the label's key type) and Score (vector of Single). Throws, naming
    /// the column, when the label is missing or not a key, or the sequence column is missing or not a vector of
    /// Single or of keys.
    /// </summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _host.CheckValue(inputSchema, nameof(inputSchema));
        if (!inputSchema.TryFindColumn(_options.LabelColumnName, out var label))
            throw _host.ExceptSchemaMismatch(nameof(inputSchema), "label", _options.LabelColumnName);
        if (label.Kind != SchemaShape.Column.VectorKind.Scalar || !label.IsKey)
            throw _host.ExceptSchemaMismatch(nameof(inputSchema), "label", _options.LabelColumnName, "key (e.g. from MapValueToKey)", label.GetTypeString());
        if (!inputSchema.TryFindColumn(_options.SequenceColumnName, out var sequence))
            throw _host.ExceptSchemaMismatch(nameof(inputSchema), "sequence", _options.SequenceColumnName);
        if (sequence.Kind == SchemaShape.Column.VectorKind.Scalar || !(sequence.IsKey || sequence.ItemType == NumberDataViewType.Single))
            throw _host.ExceptSchemaMismatch(nameof(inputSchema), "sequence", _options.SequenceColumnName, "vector of Single or of keys", sequence.GetTypeString());

        var columns = inputSchema.ToDictionary(c => c.Name);
        var keyValues = label.Annotations.TryFindColumn(AnnotationUtils.Kinds.KeyValues, out var kv) ? new[] { kv } : Array.Empty<SchemaShape.Column>();
        columns[_options.PredictedLabelColumnName] = new SchemaShape.Column(_options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar,
            label.ItemType, true, new SchemaShape(keyValues));
        columns[_options.ScoreColumnName] = new SchemaShape.Column(_options.ScoreColumnName, SchemaShape.Column.VectorKind.Vector,
            NumberDataViewType.Single, false, new SchemaShape(AnnotationUtils.AnnotationsForMulticlassScoreColumn(label)));
        if (_options.EmbeddingColumnName is { } embedding)
            columns[embedding] = new SchemaShape.Column(embedding, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }

    private DataViewSchema.Column CheckLabel(DataViewSchema schema)
    {
        var label = schema.GetColumnOrNull(_options.LabelColumnName)
            ?? throw _host.ExceptSchemaMismatch(nameof(schema), "label", _options.LabelColumnName);
        if (label.Type is not KeyDataViewType key)
            throw _host.ExceptSchemaMismatch(nameof(schema), "label", label.Name, "key (e.g. from MapValueToKey)", label.Type.ToString());
        if (key.Count < 2)
            throw _host.ExceptParam(nameof(_options.LabelColumnName),
                $"Label column '{label.Name}' has a single class (key count {key.Count}); a classifier needs at least two.");
        if (key.Count > 1_000_000)
            throw _host.ExceptParam(nameof(_options.LabelColumnName), $"Label column '{label.Name}' has {key.Count:N0} classes; at most 1,000,000 are supported.");
        return label;
    }
}
