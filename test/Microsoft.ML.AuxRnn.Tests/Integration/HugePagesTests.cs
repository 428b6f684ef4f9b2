using System.Text.RegularExpressions;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// libtorch's 2 MiB pages (CpuTuning.EnableLibTorchHugePages): on by default, the environment left as found, and off
/// when the process says so. Each case is a fresh consumer process, since libtorch reads its setting once per process.
/// </summary>
public class HugePagesTests
{
    private static string KernelMode()
    {
        const string path = "/sys/kernel/mm/transparent_hugepage/enabled";
        return File.Exists(path) ? Regex.Match(File.ReadAllText(path), @"\[(\w+)\]").Groups[1].Value : "";
    }

    private static (string Env, long HugeKb) Run(Dictionary<string, string?> environment)
    {
        var (exitCode, output) = ConsumerProgram.RunWith(environment, "hugepages");
        exitCode.Should().Be(0, output);
        string env = Regex.Match(output, @"^env=(.*)$", RegexOptions.Multiline).Groups[1].Value.Trim();
        long huge = long.Parse(Regex.Match(output, @"^hugeKb=(-?\d+)", RegexOptions.Multiline).Groups[1].Value);
        return (env, huge);
    }

    [Fact]
    public void LibTorchGetsHugePagesByDefaultAndTheEnvironmentIsLeftAsFound()
    {
        if (!OperatingSystem.IsLinux())
            return;
        var (env, huge) = Run(new() { ["THP_MEM_ALLOC_ENABLE"] = null, ["AUXRNN_CPU_TUNING"] = null });

        env.Should().Be("(unset)", "the variable is set only for libtorch's first allocation");
        if (KernelMode() is "madvise" or "always")
            huge.Should().BeGreaterThanOrEqualTo(32 * 1024, "most of a 64 MiB tensor sits on 2 MiB pages");
    }

    [Fact]
    public void TheProcessesOwnSettingAndTuningOffAreRespected()
    {
        if (!OperatingSystem.IsLinux())
            return;
        var (env, huge) = Run(new() { ["THP_MEM_ALLOC_ENABLE"] = "0", ["AUXRNN_CPU_TUNING"] = null });
        env.Should().Be("0", "a value the process set is its own");
        var (offEnv, offHuge) = Run(new() { ["THP_MEM_ALLOC_ENABLE"] = null, ["AUXRNN_CPU_TUNING"] = "off" });
        offEnv.Should().Be("(unset)");

        if (KernelMode() == "madvise") // with "always" the kernel gives huge pages to every large mapping anyway
        {
            huge.Should().BeLessThan(8 * 1024, "THP_MEM_ALLOC_ENABLE=0 keeps libtorch on 4 KiB pages");
            offHuge.Should().BeLessThan(8 * 1024, "AUXRNN_CPU_TUNING=off leaves libtorch as it is");
        }
    }
}
