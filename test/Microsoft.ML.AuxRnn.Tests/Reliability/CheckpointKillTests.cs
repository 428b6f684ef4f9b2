using System.Text.RegularExpressions;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// A training process killed mid-run loses at most one epoch: a second Fit given the same checkpoint folder
/// resumes after the last saved epoch, trains only the remaining ones, and ends with the very model an
/// uninterrupted run trains. Runs test/ConsumerProject's <c>checkpoint</c> mode as the child process.
/// </summary>
public sealed class CheckpointKillTests : IDisposable
{
    private const int Epochs = 12;
    private readonly ITestOutputHelper _output;
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "auxrnn-kill-" + Guid.NewGuid().ToString("N"));

    public CheckpointKillTests(ITestOutputHelper output) => _output = output;

    public void Dispose()
    {
        if (Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }

    private static List<int> EpochsIn(string output) =>
        Regex.Matches(output, @"^epoch (\d+) done", RegexOptions.Multiline).Select(m => int.Parse(m.Groups[1].Value)).ToList();

    [Fact]
    public void AKilledTrainingResumesFromItsLastEpochAndEndsWithTheUninterruptedModel()
    {
        // 1. Train in a child process and kill it as soon as it reports its second epoch.
        int lastReported = 0;
        var seen = new System.Text.StringBuilder();
        using (var child = ConsumerProgram.Start("checkpoint", _folder, Epochs.ToString()))
        {
            child.ErrorDataReceived += (_, e) => { lock (seen) seen.AppendLine(e.Data); };
            child.BeginErrorReadLine();
            var reading = new Thread(() =>
            {
                while (child.StandardOutput.ReadLine() is { } line)
                {
                    lock (seen)
                        seen.AppendLine(line);
                    if (Regex.Match(line, @"^epoch (\d+) done") is { Success: true } m && (lastReported = int.Parse(m.Groups[1].Value)) >= 2)
                    {
                        child.Kill(entireProcessTree: true);
                        return;
                    }
                }
            });
            reading.Start();
            bool reported = reading.Join(TimeSpan.FromMinutes(3));
            if (!reported)
                child.Kill(entireProcessTree: true); // never leave it running
            reported.Should().BeTrue($"the child reports epochs:\n{seen}");
            child.WaitForExit(60_000).Should().BeTrue();
            lock (seen)
            {
                seen.ToString().Should().NotContain("finished", "the child was killed mid-training");
                _output.WriteLine($"killed after epoch {lastReported} was reported:\n{seen}");
            }
        }
        lastReported.Should().BeInRange(2, Epochs - 1);
        Directory.GetFiles(_folder, "checkpoint.bin", SearchOption.AllDirectories).Should().ContainSingle("every finished epoch is checkpointed, in the training set's sub-folder");

        // 2. The same Fit with the same folder resumes after the last saved epoch and trains the rest only.
        var (exitCode, resumed) = ConsumerProgram.Run("checkpoint", _folder, Epochs.ToString());
        _output.WriteLine(resumed);
        exitCode.Should().Be(0, resumed);
        var resumedAfter = Regex.Match(resumed, @"resumed after epoch (\d+)");
        resumedAfter.Success.Should().BeTrue($"the resumed run says where it resumes:\n{resumed}");
        int saved = int.Parse(resumedAfter.Groups[1].Value);
        saved.Should().BeGreaterThanOrEqualTo(lastReported - 1, "at most one epoch is lost").And.BeLessThan(Epochs);
        EpochsIn(resumed).Should().Equal(Enumerable.Range(saved + 1, Epochs - saved), "only the remaining epochs are trained");
        resumed.Should().Contain($"finished history={Epochs} ", "the history spans both runs");

        // 3. It ends with the model an uninterrupted run trains, bit for bit.
        var (straightExit, straight) = ConsumerProgram.Run("checkpoint", "none", Epochs.ToString());
        straightExit.Should().Be(0, straight);
        EpochsIn(straight).Should().Equal(Enumerable.Range(1, Epochs));
        Fingerprint(resumed).Should().Be(Fingerprint(straight));
    }

    private static string Fingerprint(string output) => Regex.Match(output, @"scores=([0-9A-F]+)").Groups[1].Value.Should().NotBeEmpty().And.Subject;
}
