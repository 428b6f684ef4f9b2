using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.AuxRnn.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>
/// Mixed-precision training (<see cref="ComputePrecision.BFloat16"/>): bfloat16 copies of the network and decoder do
/// the forward and backward passes; the float32 modules stay the master weights that the optimizer updates, clips and
/// saves. Before each step the copies take the masters' weights (<see cref="PullWeights"/>); after the backward pass the
/// masters take the copies' gradients in float32 (<see cref="PushGradients"/>). The losses are computed in float32 (the
/// objective and the decoder cast logits and predictions up before softmax, cross-entropy and squares).
/// </summary>
internal sealed class MixedPrecision : IDisposable
{
    private readonly (Tensor Master, Tensor Copy)[] _parameters;
    private readonly (Tensor Master, Tensor Copy)[] _buffers;

    /// <summary>
    /// Experiment (benchmarks): keep the main network in float32 and compute only the auxiliary decoder in bfloat16,
    /// to see whether the main LSTM's cell state in bfloat16 is what costs accuracy.
    /// </summary>
    internal static bool KeepMainNetworkInFloat32 { get; set; }

    private readonly bool _ownsNetwork;

    public MixedPrecision(AuxLstmNetwork network, AuxiliaryDecoder? decoder, int decoderLayers, Device device)
    {
        var shape = network.Shape;
        _ownsNetwork = !KeepMainNetworkInFloat32;
        // The copies' initial weights are overwritten: drawn apart from the global generator's stream.
        (Network, Decoder) = ProcessState.WithGlobalGenerator<(AuxLstmNetwork, AuxiliaryDecoder?)>(null, () =>
            (_ownsNetwork ? new AuxLstmNetwork(shape) : network, decoder is null ? null : new AuxiliaryDecoder(shape, decoderLayers)));
        if (_ownsNetwork)
            Network.to(device).to(ScalarType.BFloat16);
        Decoder?.to(device).to(ScalarType.BFloat16);
        _parameters = (_ownsNetwork ? Pairs(network.parameters(), Network.parameters()) : Enumerable.Empty<(Tensor, Tensor)>())
            .Concat(decoder is null ? Enumerable.Empty<(Tensor, Tensor)>() : Pairs(decoder.parameters(), Decoder!.parameters())).ToArray();
        _buffers = _ownsNetwork ? Pairs(network.buffers(), Network.buffers()).ToArray() : Array.Empty<(Tensor, Tensor)>();
        PullWeights();
    }

    /// <summary>The bfloat16 copy of the network that computes the step.</summary>
    public AuxLstmNetwork Network { get; }

    /// <summary>The bfloat16 copy of the decoder, or null without an auxiliary loss.</summary>
    public AuxiliaryDecoder? Decoder { get; }

    /// <summary>The precision a request means on a device: Float32 or BFloat16 (Auto resolved), and why.</summary>
    public static (ComputePrecision Precision, string Reason) Resolve(ComputePrecision requested, Device device)
    {
        if (requested != ComputePrecision.Auto)
            return (requested, $"{nameof(AuxLstmClassifierOptions.Precision)} = {requested}");
        if (device.type == DeviceType.CUDA)
        {
            // TorchSharp 0.107 does not report a GPU's compute capability; bfloat16 needs 8.0 (Ampere) to be fast.
            return (ComputePrecision.Float32, "Auto: the GPU's compute capability cannot be read here, so float32");
        }
        string? unit = CpuBFloat16Unit();
        return unit is null
            ? (ComputePrecision.Float32, "Auto: the CPU has neither AMX nor AVX-512 BF16, so float32")
            : (ComputePrecision.BFloat16, $"Auto: the CPU has {unit}");
    }

    /// <summary>"AMX" or "AVX-512 BF16" when /proc/cpuinfo lists them (amx_bf16, avx512_bf16), else null.</summary>
    internal static string? CpuBFloat16Unit()
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo"))
                return null;
            string? flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            if (flags is null)
                return null;
            var set = new HashSet<string>(flags.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            return set.Contains("amx_bf16") ? "AMX" : set.Contains("avx512_bf16") ? "AVX-512 BF16" : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static IEnumerable<(Tensor, Tensor)> Pairs(IEnumerable<Tensor> masters, IEnumerable<Tensor> copies)
    {
        var m = masters.ToList();
        var c = copies.ToList();
        if (m.Count != c.Count)
            throw new InvalidOperationException($"The bfloat16 copy has {c.Count} tensors where the model has {m.Count}.");
        for (int i = 0; i < m.Count; i++)
        {
            if (!m[i].shape.SequenceEqual(c[i].shape))
                throw new InvalidOperationException($"Tensor {i} of the bfloat16 copy is [{string.Join(", ", c[i].shape)}] where the model's is [{string.Join(", ", m[i].shape)}].");
            yield return (m[i], c[i]);
        }
    }

    /// <summary>Copies the master weights (and the standardisation buffers) into the bfloat16 copies.</summary>
    public void PullWeights()
    {
        using var noGrad = no_grad();
        foreach (var (master, copy) in _parameters)
            copy.copy_(master);
        foreach (var (master, copy) in _buffers)
            copy.copy_(master);
    }

    /// <summary>Clears the copies' gradients before a backward pass.</summary>
    public void ZeroGradients()
    {
        foreach (var (_, copy) in _parameters)
        {
            if (copy.grad is { } g)
                g.zero_();
        }
    }

    /// <summary>Sets each master's gradient to its copy's, in float32 (parameters the loss did not reach get none).</summary>
    public void PushGradients()
    {
        using var noGrad = no_grad();
        foreach (var (master, copy) in _parameters)
        {
            if (copy.grad is not { } g)
                continue;
            if (master.grad is { } existing)
                existing.copy_(g);
            else
                master.grad = g.to(ScalarType.Float32);
        }
    }

    /// <summary>Puts the copies in training or evaluation mode with their masters.</summary>
    public void Train(bool on)
    {
        if (on)
        {
            Network.train(); // the master itself when it stays float32: already in this mode
            Decoder?.train();
        }
        else
        {
            Network.eval();
            Decoder?.eval();
        }
    }

    public void Dispose()
    {
        if (_ownsNetwork)
            Network.Dispose();
        Decoder?.Dispose();
    }
}
