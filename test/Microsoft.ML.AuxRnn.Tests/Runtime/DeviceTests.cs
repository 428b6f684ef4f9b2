using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace Microsoft.ML.AuxRnn.Tests.Runtime;

/// <summary>
/// Devices the ML.NET way: Device = Auto follows MLContext.GpuDeviceId and FallbackToCpu, the device index is honoured,
/// and a loaded model scores where its loading context says. This machine has no GPU, so the decision is tested as a
/// table and the CPU side end to end.
/// </summary>
public class DeviceTests
{
    [Theory]
    //          requested            gpuId  fallback cuda   count  expected
    [InlineData(ComputeDevice.Auto, null, false, false, 0, "cpu")]
    [InlineData(ComputeDevice.Auto, null, true, true, 2, "cpu")]      // no GpuDeviceId: the CPU, as ML.NET
    [InlineData(ComputeDevice.Auto, 0, false, true, 1, "cuda:0")]
    [InlineData(ComputeDevice.Auto, 1, false, true, 2, "cuda:1")]     // the index is honoured
    [InlineData(ComputeDevice.Auto, 0, true, false, 0, "cpu")]        // falls back
    [InlineData(ComputeDevice.Auto, 3, true, true, 2, "cpu")]         // no such GPU: falls back
    [InlineData(ComputeDevice.Cpu, 1, false, true, 2, "cpu")]
    [InlineData(ComputeDevice.Cuda, null, false, true, 1, "cuda:0")]
    [InlineData(ComputeDevice.Cuda, 1, false, true, 2, "cuda:1")]
    public void TheDecisionFollowsTheContext(ComputeDevice requested, int? gpu, bool fallback, bool cudaAvailable, int count, string expected)
    {
        var choice = TorchDevices.Decide(requested, gpu, fallback, cudaAvailable, count);
        choice.ToString().Should().Be(expected);
        (choice.Note is not null).Should().Be(requested == ComputeDevice.Auto && gpu is not null && expected == "cpu", "a fallback is reported");
    }

    [Theory]
    [InlineData(ComputeDevice.Auto, 0, false, false, 0, "*GpuDeviceId is 0*no CUDA device*FallbackToCpu is false*")]
    [InlineData(ComputeDevice.Auto, 2, false, true, 2, "*GpuDeviceId is 2*only 2 CUDA device*FallbackToCpu is false*")]
    [InlineData(ComputeDevice.Cuda, null, true, false, 0, "*Device is Cuda*no CUDA device*")]
    [InlineData(ComputeDevice.Cuda, 4, true, true, 2, "*GpuDeviceId is 4*only 2 CUDA device*")]
    public void AnUnsatisfiableRequestIsAnErrorThatSaysWhy(ComputeDevice requested, int? gpu, bool fallback, bool cudaAvailable, int count, string message)
    {
        var act = () => TorchDevices.Decide(requested, gpu, fallback, cudaAvailable, count);
        act.Should().Throw<InvalidOperationException>().WithMessage(message);
    }

    [Fact]
    public void TheSettingsComeFromTheMLContextThroughItsHosts()
    {
        var ml = new MLContext(seed: 1) { GpuDeviceId = 2, FallbackToCpu = true };
        TorchDevices.Settings(((IHostEnvironment)ml).Register("a").Register("b")).Should().Be(((int?)2, true));
        TorchDevices.Settings(new MLContext()).Should().Be(((int?)null, false), "ML.NET's defaults");
    }

    [Fact]
    public void FitAndLoadUseTheContextsDevice()
    {
        bool gpu = torch.cuda.is_available();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(16, 3, 6));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var auto = Synthetic.TinyOptions(o => o.Device = ComputeDevice.Auto);

        // GpuDeviceId = 0 without a GPU: an error unless FallbackToCpu; with it, the CPU and a warning on the log.
        var strict = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
        var strictFit = () => strict.MulticlassClassification.Trainers.AuxLstm(auto).Fit(keyed);
        if (gpu)
            using (var onGpu = strictFit())
                onGpu.ScoringDevice.Should().Be("cuda:0");
        else
            strictFit.Should().Throw<InvalidOperationException>().WithMessage("*GpuDeviceId is 0*FallbackToCpu is false*");

        var lenient = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
        var warnings = new List<string>();
        lenient.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) warnings.Add(e.Message); };
        using var trained = lenient.MulticlassClassification.Trainers.AuxLstm(auto).Fit(keyed);
        trained.ScoringDevice.Should().Be(gpu ? "cuda:0" : "cpu");
        if (!gpu)
            warnings.Should().Contain(m => m.Contains("using the CPU"));

        // A model trained on the CPU, loaded by a context that asks for a GPU: the loading context decides.
        using var cpu = ml.MulticlassClassification.Trainers.AuxLstm(Synthetic.TinyOptions(o => o.Device = ComputeDevice.Cpu)).Fit(keyed);
        cpu.ComputeDevice.Should().Be(ComputeDevice.Cpu);
        using var saved = new MemoryStream();
        ml.Model.Save(cpu, keyed.Schema, saved);
        AuxLstmClassifierTransformer Load(MLContext context)
        {
            saved.Position = 0;
            return (AuxLstmClassifierTransformer)context.Model.Load(saved, out _);
        }
        using (var loaded = Load(new MLContext()))
            loaded.ScoringDevice.Should().Be("cpu");
        var loadStrict = () => Load(new MLContext { GpuDeviceId = 0, FallbackToCpu = false });
        if (gpu)
            loadStrict().ScoringDevice.Should().Be("cuda:0");
        else
            loadStrict.Should().Throw<Exception>().Where(e => Flatten(e).Any(x => x.Message.Contains("GpuDeviceId is 0")), "the loading context asked for GPU 0");
        using var loadLenient = Load(new MLContext { GpuDeviceId = 0, FallbackToCpu = true });
        loadLenient.ScoringDevice.Should().Be(gpu ? "cuda:0" : "cpu");
        loadLenient.ComputeDevice.Should().Be(ComputeDevice.Cpu, "the file still records what it was trained with");
    }

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            yield return x;
    }
}
