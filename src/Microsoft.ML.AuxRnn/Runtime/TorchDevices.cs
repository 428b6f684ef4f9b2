using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Runtime;

/// <summary>
/// Chooses the TorchSharp device the ML.NET way: <see cref="ComputeDevice.Auto"/> follows the MLContext's
/// <c>GpuDeviceId</c> and <c>FallbackToCpu</c>, as ML.NET's own TorchSharp trainers do (a GPU only when
/// <c>GpuDeviceId</c> is set; when it is set but CUDA is not available, the CPU if <c>FallbackToCpu</c>, else an error),
/// and the device index is honoured (ML.NET's trainers always take CUDA device 0).
/// </summary>
internal static class TorchDevices
{
    /// <summary>A device choice: CUDA with its index, or the CPU; <see cref="Note"/> says why when it is not what was asked.</summary>
    internal readonly record struct Choice(bool Cuda, int Index, string? Note)
    {
        public override string ToString() => Cuda ? $"cuda:{Index}" : "cpu";
    }

    /// <summary>The device of the MLContext behind <paramref name="env"/> (a host registered from it carries its settings).</summary>
    public static (int? GpuDeviceId, bool FallbackToCpu) Settings(IHostEnvironment env) =>
        env is IHostEnvironmentInternal settings ? (settings.GpuDeviceId, settings.FallbackToCpu) : (null, true);

    /// <summary>Training: the options' <paramref name="requested"/> device under the context's settings.</summary>
    public static Device Resolve(ComputeDevice requested, IHostEnvironment env, IChannel? ch = null)
    {
        TorchNativeLoader.ThrowIfFailed();
        var (gpu, fallback) = Settings(env);
        return ToDevice(Decide(requested, gpu, fallback, cuda.is_available(), cuda.is_available() ? cuda.device_count() : 0), ch);
    }

    /// <summary>Loading a model: the loading context decides (as <see cref="ComputeDevice.Auto"/>), whatever device the file was trained on.</summary>
    public static Device ForLoadedModel(IHostEnvironment env, IChannel? ch = null) => Resolve(ComputeDevice.Auto, env, ch);

    private static Device ToDevice(Choice choice, IChannel? ch)
    {
        if (choice.Note is { } note)
            ch?.Warning(note);
        return choice.Cuda ? new Device(DeviceType.CUDA, choice.Index) : CPU;
    }

    /// <summary>The decision itself, free of TorchSharp so it can be tested on a machine without a GPU.</summary>
    internal static Choice Decide(ComputeDevice requested, int? gpuDeviceId, bool fallbackToCpu, bool cudaAvailable, int cudaDeviceCount)
    {
        if (gpuDeviceId is < 0)
            throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), gpuDeviceId, "MLContext.GpuDeviceId must be null or a device index (0 or more).");
        switch (requested)
        {
            case ComputeDevice.Cpu:
                return new Choice(false, 0, null);
            case ComputeDevice.Cuda:
            {
                int index = gpuDeviceId ?? 0;
                if (!cudaAvailable)
                    throw new InvalidOperationException(
                        $"{nameof(AuxLstmClassifierOptions)}.{nameof(AuxLstmClassifierOptions.Device)} is Cuda, but no CUDA device is available " +
                        "(reference the TorchSharp-cuda-linux or TorchSharp-cuda-windows backend and run on a machine with an NVIDIA GPU), or choose Cpu or Auto.");
                if (index >= cudaDeviceCount)
                    throw new InvalidOperationException(
                        $"MLContext.GpuDeviceId is {index}, but only {cudaDeviceCount} CUDA device(s) are visible (indices 0 to {cudaDeviceCount - 1}).");
                return new Choice(true, index, null);
            }
            default:
            {
                if (gpuDeviceId is not int index)
                    return new Choice(false, 0, null); // as ML.NET: the GPU only when the context asks for one
                if (cudaAvailable && index < cudaDeviceCount)
                    return new Choice(true, index, null);
                string why = cudaAvailable
                    ? $"MLContext.GpuDeviceId is {index}, but only {cudaDeviceCount} CUDA device(s) are visible"
                    : $"MLContext.GpuDeviceId is {index}, but no CUDA device is available (no GPU, or no TorchSharp CUDA backend referenced)";
                if (!fallbackToCpu)
                    throw new InvalidOperationException($"{why}, and MLContext.FallbackToCpu is false. Set FallbackToCpu = true to use the CPU, or GpuDeviceId = null.");
                return new Choice(false, 0, $"{why}: using the CPU (MLContext.FallbackToCpu is true).");
            }
        }
    }
}
