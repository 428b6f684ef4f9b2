using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Runtime;

/// <summary>Maps <see cref="ComputeDevice"/> to a TorchSharp device.</summary>
internal static class TorchDevices
{
    public static Device Resolve(ComputeDevice device)
    {
        TorchNativeLoader.ThrowIfFailed();
        switch (device)
        {
            case ComputeDevice.Cpu:
                return CPU;
            case ComputeDevice.Cuda:
                if (!cuda.is_available())
                    throw new InvalidOperationException(
                        $"{nameof(AuxLstmClassifierOptions)}.{nameof(AuxLstmClassifierOptions.Device)} is Cuda, but no CUDA device is available " +
                        "(build with -p:TorchSharpBackend=cuda and run on a machine with an NVIDIA GPU), or choose Cpu or Auto.");
                return CUDA;
            default:
                return cuda.is_available() ? CUDA : CPU;
        }
    }
}
