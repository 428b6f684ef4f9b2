using System.Collections.Concurrent;
using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Runtime;

/// <summary>
/// Runs LSTM calls without gradient through a kernel whose results have been checked on this machine.
/// </summary>
/// <remarks>
/// On some CPUs libtorch's oneDNN float32 LSTM <em>inference</em> kernel (the one a call takes without gradient)
/// computes wrong states for some layer sizes: measured with libtorch 2.10 on an AMD EPYC (Zen 5, AVX-512) machine,
/// hidden sizes 1–16, 40, 48 and 100 were off by 0.1–1.0 while 20, 24, 32, 64 and 128 were right, and the training
/// kernel (the one a call with gradient takes) was right for every size. A wrong inference kernel would make scoring
/// differ from what was trained, and feed truncated backpropagation wrong starting states, silently.
/// So the first time a layer shape runs without gradient, a known-answer check compares the two kernels on the
/// layer's own weights; where they disagree, calls of that shape run the training kernel (gradient mode on, outputs
/// detached), which costs a little more and is right. The check is cached per shape, type and device.
/// </remarks>
internal static class LstmKernelGuard
{
    private static readonly ConcurrentDictionary<(long Input, long Hidden, int Layers, ScalarType Type, DeviceType Device), bool> Trusted = new();

    /// <summary>Shapes found wrong so far (tests and diagnostics).</summary>
    internal static IEnumerable<(long Input, long Hidden, int Layers)> Untrusted =>
        Trusted.Where(p => !p.Value).Select(p => (p.Key.Input, p.Key.Hidden, p.Key.Layers));

    /// <summary><c>lstm.forward(input, state)</c>, through a kernel known to be right when gradient mode is off.</summary>
    public static (Tensor Output, Tensor H, Tensor C) Forward(LSTM lstm, Tensor input, (Tensor, Tensor)? state)
    {
        if (is_grad_enabled() || IsTrusted(lstm, input.dtype, input.device_type))
            return lstm.forward(input, state);
        return ForwardWithTrainingKernel(lstm, input, state);
    }

    private static (Tensor Output, Tensor H, Tensor C) ForwardWithTrainingKernel(LSTM lstm, Tensor input, (Tensor, Tensor)? state)
    {
        using var grad = enable_grad();
        var (output, h, c) = lstm.forward(input, state);
        var result = (output.detach(), h.detach(), c.detach());
        output.Dispose();
        h.Dispose();
        c.Dispose();
        return result;
    }

    /// <summary>Whether the inference kernel gives the training kernel's results for this layer's shape.</summary>
    internal static bool IsTrusted(LSTM lstm, ScalarType type, DeviceType device)
    {
        if (device != DeviceType.CPU)
            return true;
        var (input, hidden, layers) = ShapeOf(lstm);
        return Trusted.GetOrAdd((input, hidden, layers, type, device), _ => Check(lstm, input, type));
    }

    private static (long Input, long Hidden, int Layers) ShapeOf(LSTM lstm)
    {
        long input = 0, hidden = 0;
        int layers = 0;
        foreach (var (name, p) in lstm.named_parameters())
        {
            if (name.StartsWith("weight_ih_l", StringComparison.Ordinal))
            {
                layers++;
                if (name == "weight_ih_l0")
                    (hidden, input) = (p.shape[0] / 4, p.shape[1]);
            }
        }
        return (input, hidden, layers);
    }

    private static bool Check(LSTM lstm, long inputSize, ScalarType type)
    {
        using var scope = NewDisposeScope();
        bool requiresGrad = lstm.parameters().Any(p => p.requires_grad);
        if (!requiresGrad)
            return true; // no training kernel to compare with
        // Square (n, n, E) inputs read the same whether the layer is batch-first or time-major.
        foreach (int n in new[] { 1, 5 })
        {
            var x = (arange(n * n * inputSize, dtype: float64).reshape(n, n, inputSize) * 0.37).sin().to(type);
            Tensor expected;
            using (enable_grad())
                expected = lstm.forward(x).Item1.detach();
            Tensor actual;
            using (no_grad())
                actual = lstm.forward(x).Item1;
            // bfloat16 keeps 8 bits of mantissa: its kernels differ by rounding (≈ 1e-2), far below the wrong kernel's 0.1–1.0.
            bool right = type == ScalarType.BFloat16
                ? actual.to(float32).allclose(expected.to(float32), rtol: 3e-2, atol: 3e-2)
                : actual.allclose(expected, rtol: 1e-3, atol: 1e-4);
            if (!right)
                return false;
        }
        return true;
    }
}
