using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>
/// The paper's Transformer baseline, sized to the r-LSTM: token embedding + sinusoidal positions → TransformerEncoder
/// → mean over the sequence (padding masked) → two feed-forward layers → class logits. Benchmarks only.
/// </summary>
internal sealed class TransformerBaseline : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding _tokens;
    private readonly TransformerEncoder _encoder;
    private readonly Linear _fc1;
    private readonly Linear _fc2;
    private readonly Linear _out;
    private readonly int _model;

    public TransformerBaseline(int vocabulary, int maxLength, int model, int heads, int layers, int feedForward, int classes, int classifierHidden = 256)
        : base(nameof(TransformerBaseline))
    {
        _tokens = nn.Embedding(vocabulary, model);
        _model = model;
        _encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(model, heads, feedForward, 0.1), layers);
        _fc1 = nn.Linear(model, classifierHidden);
        _fc2 = nn.Linear(classifierHidden, classifierHidden);
        _out = nn.Linear(classifierHidden, classes);
        RegisterComponents();
    }

    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <param name="tokens">(B, T) token ids.</param>
    /// <param name="padding">(B, T) true where a step is padding.</param>
    public override Tensor forward(Tensor tokens, Tensor padding)
    {
        using var scope = NewDisposeScope();
        long steps = tokens.shape[1];
        var x = _tokens.forward(tokens) + Sinusoids(steps, _model, tokens.device);
        // TorchSharp's encoder takes (T, B, E).
        var y = _encoder.forward(x.transpose(0, 1), null, padding).transpose(0, 1);
        var keep = padding.logical_not().unsqueeze(2).to_type(ScalarType.Float32);
        var pooled = (y * keep).sum(1) / keep.sum(1).clamp_min(1);
        var h = nn.functional.relu(_fc1.forward(pooled));
        h = nn.functional.relu(_fc2.forward(h));
        return _out.forward(h).MoveToOuterDisposeScope();
    }

    private static Tensor Sinusoids(long steps, int model, Device device)
    {
        var position = arange(steps, device: device).to_type(ScalarType.Float32).unsqueeze(1);
        var rate = exp(arange(0, model, 2, device: device).to_type(ScalarType.Float32) * (-Math.Log(10_000.0) / model));
        var table = zeros(steps, model, device: device);
        table[TensorIndex.Colon, TensorIndex.Slice(0, null, 2)] = sin(position * rate);
        table[TensorIndex.Colon, TensorIndex.Slice(1, null, 2)] = cos(position * rate);
        return table.unsqueeze(0);
    }

    /// <summary>Activation memory of one training step, for deciding that a setting cannot fit (attention is T²).</summary>
    public static double EstimateStepGiB(int batch, int steps, int model, int heads, int layers, int feedForward)
    {
        double attention = (double)batch * heads * steps * steps * 4 * 3; // scores, softmax, dropout mask
        double activations = (double)batch * steps * (model * 10 + feedForward * 2) * 4;
        return layers * (attention + activations) / (1L << 30);
    }
}
