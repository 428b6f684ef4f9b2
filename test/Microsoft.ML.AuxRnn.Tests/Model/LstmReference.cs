using Microsoft.ML.AuxRnn.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Model;

/// <summary>
/// A one-layer, batch-first LSTM computed step by step in float64 from the layer's weights: the reference the
/// fused (oneDNN) calls are checked against, independent of any libtorch LSTM kernel.
/// </summary>
internal static class LstmReference
{
    public static (Tensor Output, Tensor H, Tensor C) Forward(LSTM lstm, Tensor input)
    {
        using var noGrad = no_grad();
        var p = lstm.named_parameters().ToDictionary(x => x.name, x => ((Tensor)x.parameter).to(float64));
        long hidden = p["weight_hh_l0"].shape[1];
        var x = input.to(float64);
        long rows = x.shape[0], steps = x.shape[1];
        var h = zeros(rows, hidden, dtype: float64);
        var c = zeros(rows, hidden, dtype: float64);
        var outputs = new List<Tensor>();
        for (long t = 0; t < steps; t++)
        {
            var gates = nn.functional.linear(x[.., (int)t], p["weight_ih_l0"], p["bias_ih_l0"]) + nn.functional.linear(h, p["weight_hh_l0"], p["bias_hh_l0"]);
            var i = gates.narrow(1, 0, hidden).sigmoid();
            var f = gates.narrow(1, hidden, hidden).sigmoid();
            var g = gates.narrow(1, 2 * hidden, hidden).tanh();
            var o = gates.narrow(1, 3 * hidden, hidden).sigmoid();
            c = f * c + i * g;
            h = o * c.tanh();
            outputs.Add(h);
        }
        return (stack(outputs, 1).to(float32), h.unsqueeze(0).to(float32), c.unsqueeze(0).to(float32));
    }

    public static (Tensor Output, Tensor H, Tensor C) ReferenceForward(AuxLstmNetwork network, Tensor input) => Forward(network.Lstm, input);
}
