using FluentAssertions;
using Microsoft.ML.AuxRnn.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Model;

public class LstmKernelGuardTests
{
    /// <summary>
    /// Without gradient, every layer size gives the step-by-step float64 reference's states, including the sizes
    /// whose oneDNN inference kernel is wrong on some CPUs (1–16, 40, 48, 100 on AMD Zen 5).
    /// </summary>
    [Theory]
    [InlineData(8, 1)]
    [InlineData(8, 8)]
    [InlineData(128, 16)]
    [InlineData(8, 20)]
    [InlineData(128, 48)]
    [InlineData(32, 64)]
    [InlineData(128, 100)]
    public void StatesWithoutGradientMatchTheReference(int inputSize, int hiddenSize)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(inputSize * 1000 + hiddenSize);
        var lstm = nn.LSTM(inputSize, hiddenSize, batchFirst: true);
        var x = randn(4, 20, inputSize);
        var (expected, expectedH, expectedC) = LstmReference.Forward(lstm, x);
        using var noGrad = no_grad();
        var (output, h, c) = LstmKernelGuard.Forward(lstm, x, null);
        output.allclose(expected, rtol: 1e-4, atol: 1e-5).Should().BeTrue($"outputs of E{inputSize} H{hiddenSize}");
        h.allclose(expectedH, rtol: 1e-4, atol: 1e-5).Should().BeTrue("the last hidden state");
        c.allclose(expectedC, rtol: 1e-4, atol: 1e-5).Should().BeTrue("the last cell state");
        output.requires_grad.Should().BeFalse("results without gradient carry no graph");
    }
}
