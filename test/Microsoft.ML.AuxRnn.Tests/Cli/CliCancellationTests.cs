using System.Diagnostics;
using System.Text;
using Microsoft.ML.AuxRnn.Tests.Datasets;

namespace Microsoft.ML.AuxRnn.Tests.Cli;

/// <summary>Ctrl+C (SIGINT) during `auxrnn train` stops training at the next mini-batch through the options' token.</summary>
public class CliCancellationTests
{
    [Fact]
    public void InterruptingTrainStopsItCleanlyAndSavesNothing()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
            return; // SIGINT is sent with kill(1)
        if (OperatingSystem.IsLinux() && SigintIgnored())
            return; // inherited by the child (e.g. a suite started with `&` from a script: bash then ignores SIGINT), so no signal could reach its handler
        using var temp = new ViewReader.TempFolder();
        string model = temp.File("never.zip");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = temp.Path,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "auxrnn.dll"));
        foreach (string arg in new[] { "train", "--data", TestData.Path("mnist"), "--max-rows", "64", "--no-evaluate", "--out", model,
                     "--epochs", "100000", "--hidden-size", "32", "--embedding-size", "8", "--classifier-hidden-size", "16", "--batch-size", "16",
                     "--truncation-length", "20", "--auxiliary-loss", "none", "--device", "cpu", "--number-of-threads", "1" })
            start.ArgumentList.Add(arg);
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);

        using var child = Process.Start(start)!;
        var output = new StringBuilder();
        using var epochSeen = new ManualResetEventSlim();
        child.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); if (e.Data?.Contains("Epoch 1/") == true || e.Data?.Contains("epoch 1", StringComparison.OrdinalIgnoreCase) == true) epochSeen.Set(); };
        child.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        try
        {
            // Training has started once an epoch is reported (or, whatever the progress display prints, after a while).
            epochSeen.Wait(TimeSpan.FromSeconds(60));
            child.HasExited.Should().BeFalse($"training 100,000 epochs takes minutes (1,000 took only 17.5 s in bfloat16, so the signal once came after training had ended):\n{output}");
            using (var kill = Process.Start("kill", new[] { "-INT", child.Id.ToString() })!)
                kill.WaitForExit();
            child.WaitForExit(30_000).Should().BeTrue("SIGINT stops training within a mini-batch");
            child.WaitForExit();
            string text;
            lock (output)
                text = output.ToString();
            child.ExitCode.Should().Be(1, text);
            text.Should().Contain("Training was cancelled (Ctrl+C)");
            File.Exists(model).Should().BeFalse("no model is saved");
        }
        finally
        {
            if (!child.HasExited)
                child.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Whether this process ignores SIGINT (bit 2 of SigIgn in /proc/self/status); ignored signals stay ignored across exec.</summary>
    private static bool SigintIgnored()
    {
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line != null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << 1)) != 0;
    }
}
