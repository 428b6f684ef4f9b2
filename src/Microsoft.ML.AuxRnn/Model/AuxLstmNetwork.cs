using Microsoft.ML.AuxRnn.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Model;

/// <summary>
/// The classifier of the paper: input encoder (token embedding or linear projection) → one LSTM layer →
/// the final state of each row (its own last step, never padding) → two feed-forward layers with DropConnect on
/// the second → class logits.
/// </summary>
internal sealed class AuxLstmNetwork : nn.Module
{
    /// <summary>Steps per fused LSTM call when running forward without gradient.</summary>
    public const int ForwardChunk = 256;

    private readonly Embedding? _embedding;
    private readonly Linear? _projection;
    private readonly LSTM _lstm;
    private readonly Linear _fc1;
    private readonly Linear _fc2;
    private readonly Linear _out;
    private readonly Tensor? _inputMean;
    private readonly Tensor? _inputScale;

    public AuxLstmNetwork(NetworkShape shape) : base(nameof(AuxLstmNetwork))
    {
        Shape = shape;
        if (shape.Discrete)
            _embedding = nn.Embedding(shape.Vocabulary, shape.EmbeddingSize);
        else
        {
            _projection = nn.Linear(shape.StepSize, shape.EmbeddingSize);
            // Standardisation of continuous inputs, (x − mean) / scale per value of a step: identity until Fit sets it
            // from the training data; saved with the weights.
            _inputMean = zeros(shape.StepSize);
            _inputScale = ones(shape.StepSize);
        }
        _lstm = nn.LSTM(shape.EmbeddingSize, shape.HiddenSize, batchFirst: true);
        _fc1 = nn.Linear(shape.HiddenSize, shape.ClassifierHiddenSize);
        _fc2 = nn.Linear(shape.ClassifierHiddenSize, shape.ClassifierHiddenSize);
        _out = nn.Linear(shape.ClassifierHiddenSize, shape.ClassCount);
        RegisterComponents();
    }

    public NetworkShape Shape { get; }

    public LSTM Lstm => _lstm;

    /// <summary>
    /// Starts the main LSTM's forget gates at a bias of <paramref name="bias"/> (input-side bias set, hidden-side bias 0),
    /// so that at initialisation a cell keeps about sigmoid(bias) of its content per step.
    /// </summary>
    public void InitializeForgetGate(double bias) => SetForgetGateBias(_lstm, Shape.HiddenSize, bias);

    internal static void SetForgetGateBias(LSTM lstm, int hiddenSize, double bias)
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in lstm.named_parameters())
        {
            if (name.StartsWith("bias_ih", StringComparison.Ordinal))
                p.narrow(0, hiddenSize, hiddenSize).fill_(bias);
            else if (name.StartsWith("bias_hh", StringComparison.Ordinal))
                p.narrow(0, hiddenSize, hiddenSize).fill_(0);
        }
    }

    /// <summary>Sets the embedding's row of <paramref name="token"/> to zeros (tokens only): an input that carries no information.</summary>
    public void ZeroEmbeddingRow(int token)
    {
        if (_embedding is null)
            throw new InvalidOperationException("The network reads values, not tokens.");
        using var noGrad = no_grad();
        using var row = _embedding.weight!.narrow(0, token, 1);
        row.zero_();
    }

    /// <summary>The embedding table (V, E) or the projection's weight (E, S): its gradient shows which steps a loss reached.</summary>
    internal Parameter EncoderWeight => (_embedding?.weight ?? _projection!.weight)!;

    /// <summary>Parameters of the classifier head only (what the labels train when truncation is 0).</summary>
    public IEnumerable<Parameter> ClassifierParameters() =>
        _fc1.parameters().Concat(_fc2.parameters()).Concat(_out.parameters());

    /// <summary>Parameters of the input encoder and the LSTM: everything but the classifier head (what pre-training trains).</summary>
    public IEnumerable<Parameter> SequenceParameters() =>
        (_embedding?.parameters() ?? _projection!.parameters()).Concat(_lstm.parameters());

    /// <summary>
    /// The batch's raw input on <paramref name="device"/>: tokens (B, T) as int64 or values (B, T, S) as float32.
    /// Throws when a token is outside the vocabulary or a value is not finite, naming the row and step.
    /// </summary>
    public Tensor RawInput(SequenceBatch batch, Device device)
    {
        CheckInput(batch);
        if (batch.Tokens is { } tokens)
            return tensor(tokens, new long[] { batch.Count, batch.MaxLength }, device: device);
        return tensor(batch.Values!, new long[] { batch.Count, batch.MaxLength, batch.StepSize }, device: device);
    }

    /// <summary>Embeds tokens (…, T) or projects standardised values (…, T, S) to (…, T, E).</summary>
    public Tensor EncodeRaw(Tensor raw)
    {
        if (_embedding is not null)
            return _embedding.forward(raw);
        using var standardized = Standardize(raw);
        var dtype = _projection!.weight!.dtype;
        if (standardized.dtype == dtype)
            return _projection.forward(standardized);
        using var cast = standardized.to(dtype); // values arrive in float32; a bfloat16 copy of the network reads them in bfloat16
        return _projection.forward(cast);
    }

    /// <summary>Continuous values (…, S) standardised with the statistics of the training data; tokens unchanged.</summary>
    public Tensor Standardize(Tensor raw) => _inputMean is null ? raw.alias() : (raw - _inputMean) / _inputScale!;

    /// <summary>Per-value mean and scale of continuous inputs (identity for tokens).</summary>
    public (float[] Mean, float[] Scale) Standardization =>
        _inputMean is null ? (Array.Empty<float>(), Array.Empty<float>())
            : (_inputMean.cpu().data<float>().ToArray(), _inputScale!.cpu().data<float>().ToArray());

    /// <summary>
    /// Sets the standardisation of continuous inputs from the training data: each value of a step gets its mean and
    /// standard deviation over all real steps of all rows (a constant value gets scale 1).
    /// </summary>
    public void SetStandardization(SequenceDataset data) => SetStandardization(data.Standardization());

    /// <summary>Sets the standardisation of continuous inputs from sums over the training data (nothing for tokens: null).</summary>
    public void SetStandardization(StandardizationStats? stats)
    {
        if (_inputMean is null || stats is null)
            return;
        if (stats.StepSize != Shape.StepSize)
            throw new ArgumentException($"The statistics are of {stats.StepSize} values per step but the network reads {Shape.StepSize}.", nameof(stats));
        var (mean, scale) = stats.MeanAndScale();
        using var noGrad = no_grad();
        using var meanTensor = tensor(mean);
        using var scaleTensor = tensor(scale);
        _inputMean.copy_(meanTensor);
        _inputScale!.copy_(scaleTensor);
    }

    /// <summary>Encodes steps <paramref name="start"/>..start+count of a batch: (B, count, E).</summary>
    public Tensor Encode(SequenceBatch batch, int start, int count, Device device)
    {
        using var raw = RawInput(batch, device);
        using var slice = raw.narrow(1, start, count);
        return EncodeRaw(slice);
    }

    /// <summary>Encodes the whole batch: (B, T, E).</summary>
    public Tensor Encode(SequenceBatch batch, Device device) => Encode(batch, 0, batch.MaxLength, device);

    /// <summary>
    /// Class logits from final LSTM states (B, H). In training mode the second layer's weights are dropped
    /// (DropConnect) with masks drawn from <paramref name="generator"/> (the global generator when null).
    /// </summary>
    public Tensor Classify(Tensor finalState, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.relu(_fc1.forward(finalState));
        Tensor w2 = _fc2.weight!;
        if (training && Shape.DropConnect > 0)
        {
            // DropConnect: drop individual weights (not units) of the second layer, rescaled to keep expectations.
            // Scalars held in variables for the calls' duration (see LstmRunner.RebuildCells).
            using Scalar keepProbability = 1 - Shape.DropConnect;
            using var keep = bernoulli(full_like(w2, keepProbability), generator);
            w2 = w2 * keep / keepProbability;
        }
        h = nn.functional.relu(nn.functional.linear(h, w2, _fc2.bias));
        return _out.forward(h).MoveToOuterDisposeScope();
    }

    /// <summary>Each row's hidden state at its own last step: gathers (B, H) from LSTM outputs (B, T, H).</summary>
    public static Tensor GatherLast(Tensor outputs, int[] lengths, int offset)
    {
        var index = new long[lengths.Length];
        for (int i = 0; i < lengths.Length; i++)
            index[i] = lengths[i] - 1 - offset;
        using var idx = tensor(index, device: outputs.device).view(-1, 1, 1).expand(lengths.Length, 1, outputs.shape[2]);
        return outputs.gather(1, idx).squeeze(1);
    }

    /// <summary>
    /// (h, c) of the main LSTM at each requested (row, position) of <paramref name="raw"/>, from zero states and
    /// with gradient only if gradient mode is on; see <see cref="LstmRunner"/>.
    /// </summary>
    public (Tensor H, Tensor C) StatesAt(Tensor raw, Tensor? h0, Tensor? c0, IReadOnlyList<StateRequest> requests, int maxChunk) =>
        LstmRunner.StatesAt(_lstm, EncodeRaw, raw, h0, c0, Shape.HiddenSize, requests, maxChunk);

    /// <summary>
    /// Final states of every row, computed without gradient in chunks of <see cref="ForwardChunk"/> steps, so
    /// memory does not grow with sequence length.
    /// </summary>
    public Tensor FinalStatesNoGrad(SequenceBatch batch, Device device)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var raw = RawInput(batch, device);
        var requests = new StateRequest[batch.Count];
        for (int i = 0; i < batch.Count; i++)
            requests[i] = new StateRequest(i, batch.Lengths[i]) { HiddenOnly = true };
        var (h, _) = StatesAt(raw, null, null, requests, ForwardChunk);
        return h.MoveToOuterDisposeScope();
    }

    private void CheckInput(SequenceBatch batch)
    {
        if (batch.IsDiscrete != Shape.Discrete)
            throw new ArgumentException($"The batch holds {(batch.IsDiscrete ? "tokens" : "values")} but the network reads {(Shape.Discrete ? "tokens" : "values")}.", nameof(batch));
        for (int i = 0; i < batch.Count; i++)
        {
            if (batch.Lengths[i] < 1)
                throw new ArgumentException($"Row {i} of the batch is empty; every sequence needs at least one step.", nameof(batch));
        }

        if (batch.Tokens is { } tokens)
        {
            for (int k = 0; k < tokens.Length; k++)
            {
                if ((ulong)tokens[k] >= (ulong)Shape.Vocabulary)
                    throw new ArgumentOutOfRangeException(nameof(batch), tokens[k],
                        $"Token {tokens[k]} at row {k / batch.MaxLength}, step {k % batch.MaxLength} is outside the vocabulary 0..{Shape.Vocabulary - 1}.");
            }
        }
        else
        {
            if (batch.StepSize != Shape.StepSize)
                throw new ArgumentException($"The batch has {batch.StepSize} values per step but the network reads {Shape.StepSize}.", nameof(batch));
            var values = batch.Values!;
            for (int k = 0; k < values.Length; k++)
            {
                if (!float.IsFinite(values[k]))
                {
                    long step = k / batch.StepSize;
                    throw new ArgumentOutOfRangeException(nameof(batch), values[k],
                        $"Value {values[k]} at row {step / batch.MaxLength}, step {step % batch.MaxLength} is not a finite number.");
                }
            }
        }
    }

    /// <summary>A copy of every weight, row-major, as exported to ONNX (see <see cref="NetworkWeights"/>).</summary>
    internal NetworkWeights ExportWeights()
    {
        using var noGrad = no_grad();
        static float[] Copy(Tensor? t) => t is null ? Array.Empty<float>() : t.detach().cpu().contiguous().data<float>().ToArray();
        var lstm = _lstm.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        return new NetworkWeights(
            Copy(_embedding?.weight), Copy(_projection?.weight), Copy(_projection?.bias),
            Copy(lstm["weight_ih_l0"]), Copy(lstm["weight_hh_l0"]),
            lstm.TryGetValue("bias_ih_l0", out var bih) ? Copy(bih) : new float[4 * Shape.HiddenSize],
            lstm.TryGetValue("bias_hh_l0", out var bhh) ? Copy(bhh) : new float[4 * Shape.HiddenSize],
            Copy(_fc1.weight), Copy(_fc1.bias), Copy(_fc2.weight), Copy(_fc2.bias), Copy(_out.weight), Copy(_out.bias),
            Copy(_inputMean), Copy(_inputScale));
    }

    /// <summary>Class probabilities, row-major (B × K), computed in evaluation mode without gradient.</summary>
    public float[] PredictProbabilities(SequenceBatch batch, Device device) => Predict(batch, device, false).Probabilities;

    /// <summary>
    /// Class probabilities (B × K) and, when <paramref name="withEmbeddings"/>, each row's final hidden state
    /// (B × H, the sequence embedding), row-major, computed in evaluation mode without gradient.
    /// </summary>
    public (float[] Probabilities, float[]? Embeddings) Predict(SequenceBatch batch, Device device, bool withEmbeddings)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        bool wasTraining = training;
        eval();
        try
        {
            var final = FinalStatesNoGrad(batch, device);
            var probabilities = nn.functional.softmax(Classify(final), 1);
            return (probabilities.cpu().data<float>().ToArray(), withEmbeddings ? final.cpu().data<float>().ToArray() : null);
        }
        finally
        {
            train(wasTraining);
        }
    }
}

/// <summary>
/// The network's weights as plain arrays, in PyTorch's layouts: embedding (V, E) or projection (E, S) and bias (E);
/// LSTM input and recurrent weights (4H, E) and (4H, H) and biases (4H), gates in the order i, f, g, o; the
/// classifier's layers (out, in) and biases; the standardisation of continuous inputs (mean and scale per value of a
/// step; empty for tokens).
/// </summary>
internal sealed record NetworkWeights(
    float[] Embedding, float[] Projection, float[] ProjectionBias,
    float[] LstmInput, float[] LstmHidden, float[] LstmInputBias, float[] LstmHiddenBias,
    float[] Fc1, float[] Fc1Bias, float[] Fc2, float[] Fc2Bias, float[] Out, float[] OutBias,
    float[] InputMean, float[] InputScale);
