using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Export;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Training;
using Microsoft.ML.Data;
using Microsoft.ML.Model.OnnxConverter;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(AuxLstmClassifierTransformer), null, typeof(SignatureLoadModel),
    AuxLstmClassifierTransformer.UserName, AuxLstmClassifierTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(IRowMapper), typeof(AuxLstmClassifierTransformer), null, typeof(SignatureLoadRowMapper),
    AuxLstmClassifierTransformer.UserName, AuxLstmClassifierTransformer.LoaderSignature)]
[assembly: LoadableClass(typeof(IDataTransform), typeof(AuxLstmClassifierTransformer), null, typeof(SignatureLoadDataTransform),
    AuxLstmClassifierTransformer.UserName, AuxLstmClassifierTransformer.LoaderSignature)]

namespace Microsoft.ML.AuxRnn;

/// <summary>
/// A trained auxiliary-loss LSTM classifier: reads the sequence column and adds PredictedLabel (of the training
/// label's key type, with its key values) and Score (class probabilities summing to 1, with slot names).
/// </summary>
/// <remarks>
/// <see cref="Transform"/> scores rows lazily in mini-batches of <see cref="ScoringBatchSize"/> as a cursor advances;
/// a prediction engine (<c>CreatePredictionEngine</c>) scores one row at a time. Saved with
/// <c>mlContext.Model.Save</c> (weights, shapes, column names and label keys) and loaded with
/// <c>mlContext.Model.Load</c> without any registration call.
/// </remarks>
public sealed class AuxLstmClassifierTransformer : RowToRowTransformerBase, ITransformer, IDisposable
{
    internal const string LoaderSignature = "AuxLstmClassifier";
    internal const string UserName = "Auxiliary-loss LSTM classifier";
    internal const string ModelSignature = "AUXLSTMC";
    internal const string WeightsStreamName = "AuxLstmWeights.bin";

    /// <summary>Largest scoring batch a loaded file may claim.</summary>
    private const int MaxScoringBatchSize = AuxLstmClassifierOptions.MaxBatchSize;

    private readonly AuxLstmNetwork _network;

    /// <summary>The per-value mean and scale continuous inputs are standardised with (empty for tokens).</summary>
    internal (float[] Mean, float[] Scale) NetworkStandardization => _network.Standardization;
    private readonly Device _device;
    private readonly object _gate = new();
    private long _forwardPasses;

    /// <summary>The first model version whose files carry SHA-256 checks (<see cref="ModelIntegrity"/>).</summary>
    private const uint VersionWithIntegrity = 0x00010002;

    /// <summary>The first model version that records the embedding column (<see cref="EmbeddingColumnName"/>).</summary>
    private const uint VersionWithEmbedding = 0x00010003;

    /// <summary>The first model version that maps a key column through a dense <see cref="KeyVocabulary"/> of the training keys.</summary>
    private const uint VersionWithKeyVocabulary = 0x00010004;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: ModelSignature,
        // verWrittenCur: 0x00010001, // initial
        // verWrittenCur: 0x00010002, // SHA-256 trailer: weights length and hash, settings hash
        // verWrittenCur: 0x00010003, // embedding column name
        verWrittenCur: 0x00010004, // key vocabulary (key input)
        verReadableCur: 0x00010004,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(AuxLstmClassifierTransformer).Assembly.FullName);

    internal AuxLstmClassifierTransformer(IHostEnvironment env, AuxLstmClassifierOptions options, SequenceInputType inputType,
        LabelKeys labels, AuxLstmNetwork network, Device device, ComputeDevice computeDevice, IReadOnlyList<EpochReport>? history)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(AuxLstmClassifierTransformer)))
    {
        LabelColumnName = options.LabelColumnName;
        SequenceColumnName = options.SequenceColumnName;
        PredictedLabelColumnName = options.PredictedLabelColumnName;
        ScoreColumnName = options.ScoreColumnName;
        EmbeddingColumnName = options.EmbeddingColumnName;
        ScoringBatchSize = options.ScoringBatchSize;
        ComputeDevice = computeDevice;
        InputType = inputType;
        Labels = labels;
        _network = network;
        _device = device;
        TrainingHistory = history ?? Array.Empty<EpochReport>();
        _network.eval();
    }

    /// <summary>The label column the model was trained on (not read when scoring).</summary>
    public string LabelColumnName { get; }

    /// <summary>The sequence column read when scoring.</summary>
    public string SequenceColumnName { get; }

    /// <summary>The output column with the predicted label (a key of the label's type).</summary>
    public string PredictedLabelColumnName { get; }

    /// <summary>The output column with the class probabilities.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The output column with each row's sequence embedding (the main LSTM's final hidden state), or null when there is none.</summary>
    public string? EmbeddingColumnName { get; }

    /// <summary>Size of the sequence embedding: the main LSTM's hidden size.</summary>
    public int EmbeddingSize => _network.Shape.HiddenSize;

    /// <summary>Rows scored together by <see cref="Transform"/>.</summary>
    public int ScoringBatchSize { get; }

    /// <summary>
    /// The device option the model was trained with. A loaded model scores where its loading MLContext says
    /// (<c>GpuDeviceId</c>, <c>FallbackToCpu</c>), whatever this was.
    /// </summary>
    public ComputeDevice ComputeDevice { get; }

    /// <summary>Number of classes: the label's key count.</summary>
    public int ClassCount => Labels.ClassCount;

    internal SequenceInputType InputType { get; }

    internal LabelKeys Labels { get; }

    internal NetworkShape Shape => _network.Shape;

    /// <summary>Per-epoch figures from Fit: losses, accuracies, time, learning rate (empty for a loaded model).</summary>
    public IReadOnlyList<EpochReport> TrainingHistory { get; }

    /// <summary>Where this transformer scores: "cpu" or "cuda:N".</summary>
    internal string ScoringDevice => _device.type == DeviceType.CUDA ? $"cuda:{_device.index}" : "cpu";

    /// <summary>Forward passes run so far (one per scored mini-batch or per single row).</summary>
    internal long ForwardPasses => Interlocked.Read(ref _forwardPasses);

    /// <summary>
    /// Scores <paramref name="input"/> lazily: each cursor reads ahead <see cref="ScoringBatchSize"/> rows'
    /// sequences and scores them in one forward pass. Throws, naming the column, when the schema does not fit.
    /// </summary>
    public new IDataView Transform(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        var perRow = MakeDataTransform(input);
        return new BatchScoringDataView(Host, this, input, perRow);
    }

    IDataView ITransformer.Transform(IDataView input) => Transform(input);

    /// <summary>
    /// Class probabilities (rows × classes, row-major) of every row of <paramref name="rows"/>, in one forward pass,
    /// and their embeddings (rows × <see cref="EmbeddingSize"/>) when <paramref name="withEmbeddings"/>.
    /// </summary>
    internal (float[] Probabilities, float[]? Embeddings) Score(SequenceDataset rows, bool withEmbeddings = false)
    {
        var indices = new int[rows.Count];
        for (int i = 0; i < indices.Length; i++)
            indices[i] = i;
        var batch = rows.GetBatch(indices);
        lock (_gate)
        {
            _forwardPasses++;
            return _network.Predict(batch, _device, withEmbeddings);
        }
    }

    /// <summary>Releases the network's native tensors.</summary>
    public void Dispose() => _network.Dispose();

    // ---- output columns, shared by the row mapper and the batched view ----

    /// <summary>Returns the current row's probabilities (length = <see cref="ClassCount"/>) or embedding (length = <see cref="EmbeddingSize"/>).</summary>
    internal delegate ReadOnlySpan<float> ProbabilitySource();

    /// <summary>Number of output columns: PredictedLabel, Score and, with <see cref="EmbeddingColumnName"/>, the embedding.</summary>
    internal int OutputCount => EmbeddingColumnName is null ? 2 : 3;

    /// <summary>PredictedLabel (index 0), Score (index 1) and the embedding (index 2, when there is one), with their annotations.</summary>
    internal DataViewSchema.DetachedColumn[] MakeOutputColumns(DataViewSchema inputSchema)
    {
        int classes = ClassCount;
        var predicted = new DataViewSchema.DetachedColumn(PredictedLabelColumnName, Labels.KeyType, Labels.KeyValuesAnnotations());

        var names = Labels.ClassNames();
        uint setId = checked(inputSchema.GetMaxAnnotationKind(out _, AnnotationUtils.Kinds.ScoreColumnSetId) + 1);
        var meta = new DataViewSchema.Annotations.Builder();
        meta.Add(AnnotationUtils.Kinds.SlotNames, new VectorDataViewType(TextDataViewType.Instance, classes),
            (ref VBuffer<ReadOnlyMemory<char>> dst) => new VBuffer<ReadOnlyMemory<char>>(names.Length, (ReadOnlyMemory<char>[])names.Clone()).CopyTo(ref dst));
        meta.Add(AnnotationUtils.Kinds.ScoreColumnKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> dst) => dst = AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification.AsMemory());
        meta.Add(AnnotationUtils.Kinds.ScoreValueKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> dst) => dst = AnnotationUtils.Const.ScoreValueKind.Score.AsMemory());
        meta.Add(AnnotationUtils.Kinds.ScoreColumnSetId, AnnotationUtils.ScoreColumnSetIdType, (ref uint dst) => dst = setId);
        Labels.AddKeyValues(meta, AnnotationUtils.Kinds.TrainingLabelValues);
        var score = new DataViewSchema.DetachedColumn(ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, classes), meta.ToAnnotations());
        if (EmbeddingColumnName is null)
            return new[] { predicted, score };
        var embedding = new DataViewSchema.DetachedColumn(EmbeddingColumnName, new VectorDataViewType(NumberDataViewType.Single, EmbeddingSize));
        return new[] { predicted, score, embedding };
    }

    /// <summary>
    /// Getters of the output columns (null where not active), reading the current row's probabilities from
    /// <paramref name="source"/> and its embedding from <paramref name="embedding"/>.
    /// </summary>
    internal Delegate[] MakeOutputGetters(Func<int, bool> activeOutput, ProbabilitySource source, ProbabilitySource embedding)
    {
        var getters = new Delegate[OutputCount];
        if (activeOutput(0))
        {
            var raw = Labels.KeyType.RawType;
            getters[0] = raw == typeof(uint) ? KeyGetter<uint>(source, k => (uint)k)
                : raw == typeof(byte) ? KeyGetter<byte>(source, k => (byte)k)
                : raw == typeof(ushort) ? KeyGetter<ushort>(source, k => (ushort)k)
                : KeyGetter<ulong>(source, k => (ulong)k);
        }
        if (activeOutput(1))
            getters[1] = VectorGetter(source);
        if (OutputCount > 2 && activeOutput(2))
            getters[2] = VectorGetter(embedding);
        return getters;
    }

    private static ValueGetter<VBuffer<float>> VectorGetter(ProbabilitySource source) =>
        (ref VBuffer<float> dst) =>
        {
            var values = source();
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.CopyTo(editor.Values);
            dst = editor.Commit();
        };

    private static ValueGetter<T> KeyGetter<T>(ProbabilitySource source, Func<int, T> fromKey) =>
        (ref T dst) => dst = fromKey(ArgMax(source()) + 1);

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
                best = i;
        }
        return best;
    }

    // ---- row mapper (prediction engines, GetRowToRowMapper, GetOutputSchema) ----

    /// <summary>The per-row mapper; throws, naming the column, when the sequence column is missing or of another type than at training.</summary>
    protected override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

    private sealed class Mapper : MapperBase, ISaveAsOnnx
    {
        private readonly AuxLstmClassifierTransformer _owner;
        private readonly DataViewSchema.Column _sequence;

        public Mapper(AuxLstmClassifierTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), inputSchema, parent)
        {
            _owner = parent;
            _sequence = parent.InputType.CheckColumn(Host, inputSchema, parent.SequenceColumnName);
            CheckLabel(Host, parent, inputSchema);
        }

        /// <summary>
        /// Scoring never reads the label, but data that carries a keyed label column of the training label's name is
        /// meant to be compared with PredictedLabel (an evaluator, a confusion matrix), so that column must number the
        /// classes as at training.
        /// </summary>
        /// <remarks>
        /// A label value unseen at training time, met at scoring time: keyed by the training pipeline's own
        /// <c>MapValueToKey</c> (the usual case) it becomes the missing key 0; the row is scored like any other, and
        /// ML.NET's evaluators skip rows whose label is missing. That is ML.NET's behaviour for every classifier and
        /// is kept. What is rejected here, naming the label column, is a label keyed by another mapping: a key type
        /// with another number of classes (e.g. a <c>MapValueToKey</c> fitted on the test data, which saw more
        /// values), or the same number with other key values or another order. Its metrics would be silently wrong.
        /// A label column that is not a key (raw text or numbers, as a prediction-engine input class often has) is
        /// not the classifier's business and is ignored.
        /// </remarks>
        private static void CheckLabel(IHost host, AuxLstmClassifierTransformer parent, DataViewSchema inputSchema)
        {
            if (inputSchema.GetColumnOrNull(parent.LabelColumnName) is not { Type: KeyDataViewType } label)
                return;
            if (parent.Labels.Mismatch(label) is { } why)
                throw host.ExceptParam(nameof(inputSchema),
                    $"Label column '{label.Name}' of the data being scored does not match the label the model was trained on: {why}. " +
                    "Key it with the training pipeline's own MapValueToKey (values unseen at training then become missing keys), or drop the column.");
        }

        protected override DataViewSchema.DetachedColumn[] GetOutputColumnsCore() => _owner.MakeOutputColumns(InputSchema);

        public override Delegate[] CreateGetters(DataViewRow input, Func<int, bool> activeOutput, out Action disposer)
        {
            disposer = null!;
            int outputs = _owner.OutputCount;
            if (!Enumerable.Range(0, outputs).Any(activeOutput))
                return new Delegate[outputs];

            // The outputs share one forward pass per row.
            bool withEmbeddings = outputs > 2 && activeOutput(2);
            var reader = new SequenceRowReader(input, input.Schema[_sequence.Index], _owner.InputType);
            long position = -1;
            float[] probabilities = Array.Empty<float>();
            float[]? embedding = null;
            void Update()
            {
                if (position != input.Position)
                {
                    var rows = _owner.InputType.NewDataset();
                    reader.AddTo(rows, -1);
                    (probabilities, embedding) = _owner.Score(rows, withEmbeddings);
                    position = input.Position;
                }
            }
            return _owner.MakeOutputGetters(activeOutput,
                () => { Update(); return probabilities; },
                () => { Update(); return embedding; });
        }

        protected override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action disposer) =>
            throw new InvalidOperationException("Getters are made together by CreateGetters.");

        protected override Func<int, bool> GetDependenciesCore(Func<int, bool> activeOutput)
        {
            bool any = Enumerable.Range(0, _owner.OutputCount).Any(activeOutput);
            return col => any && col == _sequence.Index;
        }

        protected override void SaveModel(ModelSaveContext ctx) => _owner.SaveModel(ctx);

        /// <summary>
        /// True: <c>mlContext.Model.ConvertToOnnx</c> then calls <see cref="SaveAsOnnx"/>, which refuses a model it cannot
        /// express with an error naming the option (returning false here would make ML.NET silently drop the step).
        /// </summary>
        public bool CanSaveOnnx(OnnxContext ctx) => true;

        /// <summary>Writes the network into the ONNX graph (see <see cref="AuxLstmOnnxExporter"/>).</summary>
        public void SaveAsOnnx(OnnxContext ctx)
        {
            Host.CheckValue(ctx, nameof(ctx));
            ctx.CheckOpSetVersion(AuxLstmOnnxExporter.MinimumOpSet, LoaderSignature);
            string sequence = _owner.SequenceColumnName;
            if (!ctx.ContainsColumn(sequence))
                throw Host.ExceptParam(nameof(AuxLstmClassifierOptions.SequenceColumnName),
                    $"The AuxLstm classifier cannot be exported to ONNX: its sequence column '{sequence}' ({nameof(AuxLstmClassifierOptions.SequenceColumnName)}) " +
                    "is made by an earlier step that ONNX cannot express, so the exported graph has no such input. Export from that column on " +
                    "(pass ConvertToOnnx the data as it enters the AuxLstm classifier) or make the column with an exportable transform.");
            NetworkWeights weights;
            lock (_owner._gate)
                weights = _owner._network.ExportWeights();
            AuxLstmOnnxExporter.Save(ctx, _owner, weights);
        }
    }

    // ---- persistence ----

    /// <summary>Writes the model into an ML.NET model context (called by <c>mlContext.Model.Save</c>).</summary>
    protected override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());

        // *** Binary format ***
        // int: id of the label column name
        // int: id of the sequence column name
        // int: id of the predicted label column name
        // int: id of the score column name
        // int: scoring batch size
        // int: compute device
        // SequenceInputType: kind, step size, levels, key raw size, key count, vector size
        // NetworkShape
        // LabelKeys: key raw size, key count, value type code, values
        // (since 0x00010003) int: id of the embedding column name, or -1 for none
        // (since 0x00010004, key input only) KeyVocabulary: int number of training keys N (-1: none, key k is token k), N ulong keys ascending
        // (since 0x00010002) long: length of the weights stream
        // (since 0x00010002) byte[32]: SHA-256 of the weights stream
        // (since 0x00010002) byte[32]: SHA-256 of all of the above and the string table (ModelIntegrity)
        // stream AuxLstmWeights.bin: the TorchSharp module's state
        long start = ctx.Writer.BaseStream.Position;
        ctx.SaveNonEmptyString(LabelColumnName);
        ctx.SaveNonEmptyString(SequenceColumnName);
        ctx.SaveNonEmptyString(PredictedLabelColumnName);
        ctx.SaveNonEmptyString(ScoreColumnName);
        ctx.Writer.Write(ScoringBatchSize);
        ctx.Writer.Write((int)ComputeDevice);
        InputType.Write(ctx.Writer);
        Shape.Write(ctx.Writer);
        Labels.Save(ctx);
        ctx.SaveStringOrNull(EmbeddingColumnName);
        if (InputType.Kind == SequenceInputKind.Keys)
        {
            if (InputType.KeyMap is { } keyMap)
                keyMap.Write(ctx.Writer);
            else
                KeyVocabulary.WriteNone(ctx.Writer); // a model loaded from a file written before key vocabularies
        }

        byte[] weights;
        lock (_gate)
        {
            using var buffer = new MemoryStream();
            using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
                _network.save(writer);
            weights = buffer.ToArray();
        }
        ctx.Writer.Write((long)weights.Length);
        ctx.Writer.Write(System.Security.Cryptography.SHA256.HashData(weights));
        ctx.Writer.Flush();
        ctx.Writer.Write(ModelIntegrity.HashSettings(ctx.Writer.BaseStream, start, ctx.Writer.BaseStream.Position, ModelIntegrity.StringsOf(ctx.Strings)));
        ctx.SaveBinaryStream(WeightsStreamName, writer => writer.Write(weights));
    }

    // Factory method for SignatureLoadModel.
    private static AuxLstmClassifierTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        // Checked before CreateChecked is compiled: loading uses ML.NET internals, which another ML.NET release may lack.
        MLNetVersionGuard.Check();
        return CreateChecked(env, ctx);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static AuxLstmClassifierTransformer CreateChecked(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        env.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());
        TorchNativeLoader.ThrowIfFailed();
        try
        {
            return Load(env, ctx);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("The model's AuxLstmClassifier stream ends early; the file is truncated or corrupt.", e);
        }
    }

    private static AuxLstmClassifierTransformer Load(IHostEnvironment env, ModelLoadContext ctx)
    {
        // Files written since 0x00010002 are checked against their SHA-256 trailer before anything in them is used;
        // older files (which have none) still load, with the structural checks below only.
        (long Length, byte[] Hash)? expectedWeights = null;
        long settingsEnd = -1;
        bool settingsIntact = true;
        if (ctx.Header.ModelVerWritten >= VersionWithIntegrity)
        {
            var stream = ctx.Reader.BaseStream;
            long start = stream.Position;
            long size = ctx.Header.CbModel;
            if (size < ModelIntegrity.TrailerSize || size > ModelIntegrity.MaxSettingsBytes || start + size > stream.Length)
                throw new InvalidDataException($"The model's AuxLstmClassifier stream declares {size:N0} bytes of settings, out of range; the file is corrupt.");
            long trailer = start + size - ModelIntegrity.TrailerSize;
            stream.Position = trailer;
            long weightsLength = ctx.Reader.ReadInt64();
            byte[] weightsHash = ctx.Reader.ReadBytes(ModelIntegrity.HashSize);
            byte[] settingsHash = ctx.Reader.ReadBytes(ModelIntegrity.HashSize);
            byte[] actual = ModelIntegrity.HashSettings(stream, start, trailer + sizeof(long) + ModelIntegrity.HashSize, ModelIntegrity.StringsOf(ctx.Strings));
            settingsIntact = System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(actual, settingsHash);
            stream.Position = start;
            expectedWeights = (weightsLength, weightsHash);
            settingsEnd = trailer;
        }

        // The settings are parsed even when their checksum fails (the parser bounds everything it reads), only to say
        // what is wrong with them; nothing of a file that fails its checksum is used.
        AuxLstmClassifierOptions options;
        ComputeDevice computeDevice;
        SequenceInputType inputType;
        NetworkShape shape;
        LabelKeys labels;
        try
        {
            (options, computeDevice, inputType, shape, labels) = ReadSettings(ctx);
            if (settingsEnd >= 0 && ctx.Reader.BaseStream.Position != settingsEnd)
                throw new InvalidDataException("The model's AuxLstmClassifier settings do not end where its checksum trailer begins; the file is corrupt.");
        }
        catch (Exception e) when (!settingsIntact && e is not OutOfMemoryException)
        {
            throw ModelIntegrity.Mismatch(ModelIntegrity.SettingsPart, e.Message);
        }
        if (!settingsIntact)
            throw ModelIntegrity.Mismatch(ModelIntegrity.SettingsPart);
        if (settingsEnd >= 0)
            ctx.Reader.BaseStream.Position = settingsEnd + ModelIntegrity.TrailerSize;

        // The initial weights are overwritten by the file's: drawn apart from the caller's global generator stream.
        var network = ProcessState.WithGlobalGenerator(null, () => new AuxLstmNetwork(shape));
        try
        {
            long maxBytes = WeightsLimit(network, out long parameterBytes);
            if (expectedWeights is { } expected && (expected.Length < parameterBytes || expected.Length > maxBytes))
                throw new InvalidDataException($"The model records a weights stream of {expected.Length:N0} bytes for a network of {parameterBytes:N0} bytes of parameters; the file is corrupt.");
            // The zip's directory says how large the entry is: refuse a crafted size (or a zip bomb) before extracting it.
            ModelIntegrity.CheckDeclaredWeightsSize(ctx, WeightsStreamName, maxBytes, expectedWeights?.Length);
            if (!ctx.TryLoadBinaryStream(WeightsStreamName, reader => LoadWeights(network, reader, parameterBytes, maxBytes, expectedWeights?.Hash)))
                throw new InvalidDataException($"The model has no '{WeightsStreamName}' stream; the file is corrupt.");
            if (!AllFinite(network))
                throw new InvalidDataException("The model's weights hold NaN or infinite values; the file is corrupt.");
            if (network.Standardization.Scale.Any(v => !(v > 0)))
                throw new InvalidDataException("The model's input standardisation has a scale that is not positive; the file is corrupt.");
        }
        catch
        {
            network.Dispose();
            throw;
        }

        // The loading context decides where the model scores (its GpuDeviceId and FallbackToCpu), not the device it was trained on.
        var device = TorchDevices.ForLoadedModel(env);
        network.to(device);
        return new AuxLstmClassifierTransformer(env, options, inputType, labels, network, device, computeDevice, null);
    }

    private static (AuxLstmClassifierOptions, ComputeDevice, SequenceInputType, NetworkShape, LabelKeys) ReadSettings(ModelLoadContext ctx)
    {
        var options = new AuxLstmClassifierOptions
        {
            LabelColumnName = ctx.LoadNonEmptyString(),
            SequenceColumnName = ctx.LoadNonEmptyString(),
            PredictedLabelColumnName = ctx.LoadNonEmptyString(),
            ScoreColumnName = ctx.LoadNonEmptyString(),
        };
        int batchSize = ctx.Reader.ReadInt32();
        if (batchSize < 1 || batchSize > MaxScoringBatchSize)
            throw new InvalidDataException($"The model's scoring batch size {batchSize} is out of range; the file is corrupt.");
        options.ScoringBatchSize = batchSize;
        var computeDevice = (ComputeDevice)ctx.Reader.ReadInt32();
        if (!Enum.IsDefined(computeDevice))
            throw new InvalidDataException($"The model's device {(int)computeDevice} is unknown; the file is corrupt.");

        var inputType = SequenceInputType.Read(ctx.Reader);
        var shape = NetworkShape.Read(ctx.Reader);
        if (shape.Discrete != inputType.Discrete || shape.StepSize != inputType.NetworkStepSize)
            throw new InvalidDataException("The model's network shape does not match its sequence input type; the file is corrupt.");
        var labels = LabelKeys.Load(ctx, shape.ClassCount);
        if (ctx.Header.ModelVerWritten >= VersionWithEmbedding)
        {
            options.EmbeddingColumnName = ctx.LoadStringOrNull();
            if (options.EmbeddingColumnName is { } embedding && (embedding.Length == 0
                || embedding == options.PredictedLabelColumnName || embedding == options.ScoreColumnName))
                throw new InvalidDataException($"The model's embedding column name '{embedding}' is invalid; the file is corrupt.");
        }
        // Files written before key vocabularies (and keyed models re-saved from them) read key k as token k.
        if (ctx.Header.ModelVerWritten >= VersionWithKeyVocabulary && inputType.Kind == SequenceInputKind.Keys)
            inputType = inputType with { KeyMap = KeyVocabulary.ReadOrNull(ctx.Reader, inputType.KeyCount) };
        if (shape.Vocabulary != inputType.Vocabulary)
            throw new InvalidDataException($"The model's network shape ({shape.Vocabulary:N0} tokens) does not match its sequence input type ({inputType.Vocabulary:N0} tokens); the file is corrupt.");
        return (options, computeDevice, inputType, shape, labels);
    }

    /// <summary>Most bytes the weights stream of <paramref name="network"/> may have: its parameters and buffers plus each tensor's name and header.</summary>
    private static long WeightsLimit(AuxLstmNetwork network, out long parameterBytes)
    {
        var state = network.state_dict();
        parameterBytes = state.Values.Sum(t => t.numel() * t.ElementSize);
        return parameterBytes + state.Keys.Sum(name => 64L + 4 * name.Length) + 4096;
    }

    /// <summary>
    /// Loads the weights, after checking the stream's size against the network's parameters and buffers (so a
    /// corrupt stream cannot make it allocate more than the network whose shape was checked) and, for files that
    /// carry one, its SHA-256.
    /// </summary>
    private static void LoadWeights(AuxLstmNetwork network, BinaryReader reader, long parameterBytes, long maxBytes, byte[]? expectedHash)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = reader.BaseStream.Read(chunk, 0, chunk.Length)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > maxBytes)
                throw new InvalidDataException($"The model's weights stream is larger than its network's {parameterBytes:N0} bytes of parameters; the file is corrupt.");
        }
        if (buffer.Length < parameterBytes)
            throw new InvalidDataException($"The model's weights stream has {buffer.Length:N0} bytes, fewer than its network's {parameterBytes:N0} bytes of parameters; the file is truncated.");
        bool intact = expectedHash is null
            || System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                System.Security.Cryptography.SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)), expectedHash);
        if (!intact)
        {
            // Rejected whatever follows; reading the damaged weights (bounded above) only says what is wrong with them.
            string? why = null;
            try
            {
                ReadWeights(network, buffer);
                if (!AllFinite(network))
                    why = "its weights hold NaN or infinite values";
            }
            catch (InvalidDataException e)
            {
                why = e.Message;
            }
            throw ModelIntegrity.Mismatch(ModelIntegrity.WeightsPart(WeightsStreamName), why);
        }
        ReadWeights(network, buffer);
    }

    private static void ReadWeights(AuxLstmNetwork network, MemoryStream buffer)
    {
        buffer.Position = 0;
        using var weights = new BinaryReader(buffer, System.Text.Encoding.UTF8, leaveOpen: true);
        try
        {
            network.load(weights);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("The model's weights stream ends early; the file is truncated.", e);
        }
        catch (Exception e) when (e is ArgumentException or IOException or FormatException or InvalidOperationException or OverflowException)
        {
            throw new InvalidDataException("The model's weights stream is corrupt: " + e.Message, e);
        }
        if (buffer.Position != buffer.Length)
            throw new InvalidDataException("The model's weights stream has trailing bytes; the file is corrupt.");
    }

    /// <summary>Whether every parameter of <paramref name="module"/> is finite (no NaN, no infinity).</summary>
    internal static bool AllFinite(nn.Module module)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return module.parameters().Cast<Tensor>().Concat(module.buffers()).All(p => isfinite(p).all().item<bool>());
    }

    // Factory method for SignatureLoadRowMapper.
    private static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema) =>
        Create(env, ctx).MakeRowMapper(inputSchema);

    // Factory method for SignatureLoadDataTransform.
    private static IDataTransform Create(IHostEnvironment env, ModelLoadContext ctx, IDataView input) =>
        Create(env, ctx).MakeDataTransform(input);
}
