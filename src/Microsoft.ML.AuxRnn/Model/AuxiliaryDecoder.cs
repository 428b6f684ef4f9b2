using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Model;

/// <summary>
/// The auxiliary network of r-LSTM and p-LSTM: its own input encoder → an LSTM of (by default) 2 layers whose bottom
/// layer starts from the main LSTM's state at the anchor and whose upper layers start from zeros → a 2-layer feed-forward head
/// at every step giving a distribution over the vocabulary (tokens; cross-entropy) or a vector (values; squared
/// L2 distance). It is fed a segment's steps 0..m−2 and predicts steps 1..m−1.
/// </summary>
/// <remarks>
/// Used only while training: it is not part of <see cref="AuxLstmNetwork"/>'s saved state. With teacher forcing
/// the whole segment batch goes through one fused 2-layer LSTM call; with scheduled sampling the decoder runs
/// step by step, feeding back (per row, with the given probability) a token sampled from its own prediction or
/// its predicted vector. Internally everything is time-major (steps, rows, …), the layout oneDNN's LSTM computes in:
/// no transposed copies of inputs, outputs or their gradients; predictions are returned as a (rows, steps, …) view.
/// </remarks>
internal sealed class AuxiliaryDecoder : nn.Module
{
    private readonly Embedding? _embedding;
    private readonly Linear? _projection;
    private readonly LSTM _lstm;
    private readonly Linear _fc1;
    private readonly Linear _fc2;

    /// <param name="shape">The main network's shape (sizes, vocabulary or step size).</param>
    /// <param name="layers">LSTM layers (<see cref="AuxLstmClassifierOptions.DecoderLayers"/>).</param>
    public AuxiliaryDecoder(NetworkShape shape, int layers = 2) : base(nameof(AuxiliaryDecoder))
    {
        if (layers < 1)
            throw new ArgumentOutOfRangeException(nameof(layers));
        Shape = shape;
        Layers = layers;
        Predicts = shape.AuxiliaryLoss == AuxiliaryLoss.Predict;
        if (Predicts)
            _lstm = nn.LSTM(shape.HiddenSize, shape.HiddenSize, numLayers: layers, batchFirst: false);
        else
        {
            if (shape.Discrete)
                _embedding = nn.Embedding(shape.Vocabulary, shape.EmbeddingSize);
            else
                _projection = nn.Linear(shape.StepSize, shape.EmbeddingSize);
            _lstm = nn.LSTM(shape.EmbeddingSize, shape.HiddenSize, numLayers: layers, batchFirst: false);
        }
        _fc1 = nn.Linear(shape.HiddenSize, shape.ClassifierHiddenSize);
        _fc2 = nn.Linear(shape.ClassifierHiddenSize, shape.Discrete ? shape.Vocabulary : shape.StepSize);
        RegisterComponents();
    }

    public NetworkShape Shape { get; }

    public int Layers { get; }

    /// <summary>p-LSTM: stacked on the main LSTM's outputs (no input encoder of its own) rather than fed the segment.</summary>
    public bool Predicts { get; }

    /// <summary>
    /// p-LSTM predictions (R, N, V or S) of each segment's steps from the main LSTM's states just before them
    /// (<paramref name="mainOutputs"/>, (R, N, H)): the auxiliary LSTM starts from zeros and reads those states.
    /// </summary>
    public Tensor ForwardPredict(Tensor mainOutputs)
    {
        using var scope = NewDisposeScope();
        var dtype = _lstm.parameters().First().dtype;
        if (mainOutputs.dtype != dtype)
            mainOutputs = mainOutputs.to(dtype); // a bfloat16 decoder on a float32 main network (the cast passes gradients)
        var (y, _, _) = _lstm.forward(mainOutputs.transpose(0, 1));
        return Head(y).transpose(0, 1).MoveToOuterDisposeScope();
    }

    private Tensor EncodeRaw(Tensor raw)
    {
        if (_embedding is not null)
            return _embedding.forward(raw);
        if (_projection is null)
            throw new InvalidOperationException("A p-LSTM decoder reads the main LSTM's outputs, not raw steps.");
        if (raw.dtype == _projection.weight!.dtype)
            return _projection.forward(raw);
        using var cast = raw.to(_projection.weight!.dtype); // float32 values read by a bfloat16 copy of the decoder
        return _projection.forward(cast);
    }

    private Tensor Head(Tensor y)
    {
        // ReLU in place: the linear layer's backward does not need its output, ReLU's needs only its result.
        using var hidden = _fc1.forward(y);
        nn.functional.relu(hidden, inplace: true);
        return _fc2.forward(hidden);
    }

    /// <summary>
    /// Predictions (R, M − 1, V or S) of segment steps 1..M−1 from steps 0..M−2 (a view of time-major storage).
    /// </summary>
    /// <param name="anchorH">(R, H) main-LSTM hidden state at each segment's anchor: the bottom layer's start.</param>
    /// <param name="anchorC">(R, H) main-LSTM cell state at each anchor.</param>
    /// <param name="segments">Raw segment input, (R, M) tokens or (R, M, S) values, in the order the decoder reads them.</param>
    /// <param name="samplingProbability">Probability of feeding a row its own previous prediction instead of the true step.</param>
    /// <param name="generator">Random source of the sampling decisions and sampled tokens (the global one when null).</param>
    /// <param name="stepwise">Run step by step even without sampling (slow; for tests).</param>
    public Tensor Forward(Tensor anchorH, Tensor anchorC, Tensor segments, double samplingProbability, Generator? generator, bool stepwise = false)
    {
        using var scope = NewDisposeScope();
        long rows = segments.shape[0];
        long m = segments.shape[1];
        if (m < 2)
            throw new ArgumentException("Segments need at least 2 steps.", nameof(segments));
        var dtype = _lstm.parameters().First().dtype;
        if (anchorH.dtype != dtype)
        {
            anchorH = anchorH.to(dtype); // a bfloat16 decoder started from a float32 main network's states
            anchorC = anchorC.to(dtype);
        }
        var zero = zeros_like(anchorH);
        var h0 = stack(new[] { anchorH }.Concat(Enumerable.Repeat(zero, Layers - 1)), 0);
        var c0 = stack(new[] { anchorC }.Concat(Enumerable.Repeat(zero, Layers - 1)), 0);
        var inputs = EncodeRaw(segments.narrow(1, 0, m - 1).transpose(0, 1)); // (M − 1, R, E)

        if (samplingProbability <= 0 && !stepwise)
        {
            var (y, _, _) = _lstm.forward(inputs, (h0, c0));
            return Head(y).transpose(0, 1).MoveToOuterDisposeScope();
        }
        if (!stepwise)
            return TwoPassSampling(inputs, (h0, c0), segments, samplingProbability, generator).MoveToOuterDisposeScope();

        var outputs = new List<Tensor>((int)m - 1);
        (Tensor, Tensor) state = (h0, c0);
        using Scalar probability = samplingProbability; // held for every call (see LstmRunner.RebuildCells)
        Tensor? previous = null;
        for (long j = 0; j < m - 1; j++)
        {
            var x = inputs.narrow(0, j, 1);
            if (previous is not null && samplingProbability > 0)
            {
                // No host synchronisation: the mix is computed whether or not any row feeds back.
                var feedBack = rand(new[] { rows }, device: segments.device, generator: generator).lt(probability);
                var own = EncodeRaw(previous.unsqueeze(0));
                x = where(feedBack.view(1, rows, 1), own, x);
            }
            var (y, h, c) = _lstm.forward(x, state);
            state = (h, c);
            var o = Head(y);
            outputs.Add(o);
            if (samplingProbability > 0)
            {
                using var detached = o.squeeze(0).detach();
                previous = Shape.Discrete
                    ? nn.functional.softmax(detached.to(ScalarType.Float32), -1).multinomial(1, generator: generator).squeeze(1)
                    : detached.clone();
            }
        }
        return cat(outputs, 0).transpose(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Scheduled sampling in two fused passes instead of M − 1 single-step calls: a teacher-forced pass without
    /// gradient gives the prediction after every step; each input from step 1 on is then the row's own prediction of
    /// it (sampled from the softmax for tokens, the predicted values otherwise) with probability
    /// <paramref name="samplingProbability"/>, else the true step; a second fused pass with gradient reads those
    /// inputs. It differs from the step-by-step path in one way: a fed-back prediction comes from the teacher-forced
    /// history rather than from one that itself read earlier predictions (the "parallel scheduled sampling" of
    /// Duckworth et al., 2019, with one pass). Measured against the step-by-step path in docs/results.md.
    /// </summary>
    private Tensor TwoPassSampling(Tensor inputs, (Tensor, Tensor) start, Tensor segments, double samplingProbability, Generator? generator)
    {
        long steps = inputs.shape[0], rows = inputs.shape[1];
        if (steps < 2)
        {
            var (y1, _, _) = _lstm.forward(inputs, start);
            return Head(y1).transpose(0, 1);
        }
        Tensor fed;
        using (no_grad())
        {
            // Without gradient: through the kernel guard (libtorch's inference kernel is wrong for some sizes on some CPUs).
            var (y, _, _) = Runtime.LstmKernelGuard.Forward(_lstm, inputs.narrow(0, 0, steps - 1), start);
            var predicted = Head(y); // (M − 2, R, V or S): predictions of steps 1 .. M − 2
            fed = Shape.Discrete
                ? nn.functional.softmax(predicted.to(ScalarType.Float32).view(-1, predicted.shape[2]), -1)
                    .multinomial(1, generator: generator).view(steps - 1, rows)
                : predicted;
        }
        var own = EncodeRaw(fed); // with gradient into the encoder, as the step-by-step path's fed-back inputs have
        using Scalar probability = samplingProbability; // held for the call (see LstmRunner.RebuildCells)
        var feedBack = rand(new[] { steps - 1, rows, 1L }, device: segments.device, generator: generator).lt(probability);
        var mixed = cat(new[] { inputs.narrow(0, 0, 1), where(feedBack, own, inputs.narrow(0, 1, steps - 1)) }, 0);
        var (output, _, _) = _lstm.forward(mixed, start);
        return Head(output).transpose(0, 1);
    }

    /// <summary>
    /// The auxiliary loss of a batch: each segment's loss averaged over its predicted steps, summed over segments
    /// and divided by <paramref name="batchRows"/> (so it is summed over a row's anchors and averaged over rows).
    /// </summary>
    /// <param name="predictions">(R, P, V or S): r-LSTM's from <see cref="Forward"/>, p-LSTM's from <see cref="ForwardPredict"/>.</param>
    /// <param name="targets">What they predict, (R, P) tokens or (R, P, S) values.</param>
    /// <param name="predicted">Real predicted steps of each segment (≥ 1; the rest is padding).</param>
    /// <param name="batchRows">Rows of the batch the segments come from.</param>
    public Tensor Loss(Tensor predictions, Tensor targets, IReadOnlyList<int> predicted, int batchRows)
    {
        using var scope = NewDisposeScope();
        long rows = targets.shape[0];
        long p = targets.shape[1];
        if (predictions.dtype != ScalarType.Float32)
            predictions = predictions.to(ScalarType.Float32); // mixed precision: softmax, cross-entropy and squares in float32
        Tensor perStep;
        if (Shape.Discrete)
        {
            // Read the logits in their storage order (time-major from Forward) rather than copying them.
            var timeMajor = predictions.transpose(0, 1);
            perStep = timeMajor.is_contiguous()
                ? nn.functional.cross_entropy(timeMajor.view(-1, Shape.Vocabulary), targets.t().reshape(-1), reduction: nn.Reduction.None)
                    .view(p, rows).t()
                : nn.functional.cross_entropy(predictions.reshape(-1, Shape.Vocabulary), targets.reshape(-1), reduction: nn.Reduction.None)
                    .view(rows, p);
        }
        else
        {
            perStep = (predictions - targets).square().sum(-1);
        }

        var weights = new float[rows * p];
        for (int r = 0; r < rows; r++)
        {
            int count = predicted[r];
            for (int j = 0; j < count; j++)
                weights[r * p + j] = 1f / count;
        }
        var w = tensor(weights, new long[] { rows, p }, device: predictions.device);
        return ((perStep * w).sum() / batchRows).MoveToOuterDisposeScope();
    }
}
