using Microsoft.ML.AuxRnn.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests;

public class SmokeTests
{
    [Fact]
    public void TorchSharpLoadsAndTrains()
    {
        TorchNativeLoader.EnsureInitialized();
        var lstm = nn.LSTM(3, 8, batchFirst: true);
        var x = randn(2, 5, 3);
        var (y, _, _) = lstm.forward(x);
        y.shape.Should().Equal(2, 5, 8);
        y.sum().backward();
        lstm.parameters().First().grad.Should().NotBeNull();
        Console.WriteLine(TorchNativeLoader.Status);
    }
}
