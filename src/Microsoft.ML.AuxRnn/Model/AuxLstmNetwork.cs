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

    public AuxLstmNetwork(NetworkShape shape) : base(nameof(AuxLstmNetwork))
    {
        Shape = shape;
        if (shape.Discrete)
            _embedding = nn.Embedding(shape.Vocabulary, shape.EmbeddingSize);
        else
            _projection = nn.Linear(shape.StepSize, shape.EmbeddingSize);
        _lstm = nn.LSTM(shape.EmbeddingSize, shape.HiddenSize, batchFirst: true);
        _fc1 = nn.Linear(shape.HiddenSize, shape.ClassifierHiddenSize);
        _fc2 = nn.Linear(shape.ClassifierHiddenSize, shape.ClassifierHiddenSize);
        _out = nn.Linear(shape.ClassifierHiddenSize, shape.ClassCount);
        RegisterComponents();
    }

    public NetworkShape Shape { get; }

    public LSTM Lstm => _lstm;

    /// <summary>Parameters of the classifier head only (what the labels train when truncation is 0).</summary>
    public IEnumerable<Parameter> ClassifierParameters() =>
        _fc1.parameters().Concat(_fc2.parameters()).Concat(_out.parameters());

    /// <summary>Encodes steps <paramref name="start"/>..start+count of a batch: (B, count, E).</summary>
    public Tensor Encode(SequenceBatch batch, int start, int count, Device device)
    {
        if (batch.Tokens is { } tokens)
        {
            using var t = tensor(tokens, new long[] { batch.Count, batch.MaxLength }, device: CPU);
            using var slice = t.narrow(1, start, count);
            using var onDevice = slice.to(device);
            return _embedding!.forward(onDevice);
        }

        using var v = tensor(batch.Values!, new long[] { batch.Count, batch.MaxLength, batch.StepSize }, device: CPU);
        using var vslice = v.narrow(1, start, count);
        using var vdev = vslice.to(device);
        return _projection!.forward(vdev);
    }

    /// <summary>Encodes the whole batch: (B, T, E).</summary>
    public Tensor Encode(SequenceBatch batch, Device device) => Encode(batch, 0, batch.MaxLength, device);

    /// <summary>Class logits from final LSTM states (B, H).</summary>
    public Tensor Classify(Tensor finalState)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.relu(_fc1.forward(finalState));
        Tensor w2 = _fc2.weight!;
        if (training && Shape.DropConnect > 0)
        {
            // DropConnect: drop individual weights (not units) of the second layer, rescaled to keep expectations.
            using var keep = bernoulli(full_like(w2, 1 - Shape.DropConnect));
            w2 = w2 * keep / (1 - Shape.DropConnect);
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
    /// Final states of every row, computed without gradient in chunks of <see cref="ForwardChunk"/> steps, so
    /// memory does not grow with sequence length.
    /// </summary>
    public Tensor FinalStatesNoGrad(SequenceBatch batch, Device device)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var final = zeros(batch.Count, Shape.HiddenSize, device: device);
        (Tensor h, Tensor c)? state = null;
        for (int start = 0; start < batch.MaxLength; start += ForwardChunk)
        {
            int count = Math.Min(ForwardChunk, batch.MaxLength - start);
            var x = Encode(batch, start, count, device);
            var (y, h, c) = _lstm.forward(x, state);
            state = (h, c);
            for (int i = 0; i < batch.Count; i++)
            {
                int last = batch.Lengths[i] - 1;
                if (last >= start && last < start + count)
                    final[i].copy_(y[i, last - start]);
            }
        }
        return final.MoveToOuterDisposeScope();
    }

    /// <summary>Class probabilities, row-major (B × K), computed in evaluation mode without gradient.</summary>
    public float[] PredictProbabilities(SequenceBatch batch, Device device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        bool wasTraining = training;
        eval();
        try
        {
            var probabilities = nn.functional.softmax(Classify(FinalStatesNoGrad(batch, device)), 1);
            return probabilities.cpu().data<float>().ToArray();
        }
        finally
        {
            train(wasTraining);
        }
    }
}
