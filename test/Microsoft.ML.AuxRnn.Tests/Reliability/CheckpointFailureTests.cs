using Microsoft.ML.Data;
using System.Diagnostics;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// A checkpoint folder survives what goes wrong around it: the half-written temporary file of a killed process is
/// removed by the next Fit that uses the folder, and a save that fails (the disk is full) leaves the previous
/// checkpoint in place, loadable: the next Fit resumes from it.
/// </summary>
public sealed class CheckpointFailureTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("auxrnn-checkpoint-fail-").FullName;
    private readonly ITestOutputHelper _output;

    public CheckpointFailureTests(ITestOutputHelper output) => _output = output;

    public void Dispose()
    {
        Directory.Delete(_folder, recursive: true);
        ModelIntegrityTests.CollectGarbage();
    }

    private (MLContext Ml, IEstimator<ITransformer> Pipeline, IDataView Data) Setup(int epochs)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(32, 3, 8));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o => { o.Epochs = epochs; o.CheckpointFolder = _folder; })));
        return (ml, pipeline, data);
    }

    /// <summary>The id of a process that has exited.</summary>
    private static int DeadProcessId()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }

    [Fact]
    public void AKilledProcessesHalfWrittenCheckpointIsRemovedByTheNextFit()
    {
        string stale = Path.Combine(_folder, $"checkpoint.bin.{DeadProcessId()}.tmp");
        File.WriteAllBytes(stale, new byte[4096]);
        string unrelated = Path.Combine(_folder, "checkpoint.bin.notes.tmp");
        File.WriteAllText(unrelated, "not a process id");

        var (ml, pipeline, data) = Setup(epochs: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => messages.Add(e.Message);
        using (((IEnumerable<ITransformer>)pipeline.Fit(data)).OfType<AuxLstmClassifierTransformer>().Single())
        {
        }

        File.Exists(stale).Should().BeFalse("the temporary file of a process that is gone is stale");
        File.Exists(unrelated).Should().BeTrue("only checkpoint.bin.<pid>.tmp files are the library's");
        messages.Should().Contain(m => m.Contains("Removed") && m.Contains(Path.GetFileName(stale)));
        Directory.GetFiles(_folder, "*.tmp").Should().Equal(unrelated);
    }

    [Fact]
    public void ASaveThatFailsOnAFullDiskLeavesThePreviousCheckpointLoadable()
    {
        if (!File.Exists("/dev/full"))
            return;
        // Epoch 1 is saved; epoch 2's save writes into /dev/full (every write: "No space left on device").
        // Checkpoints live in the folder's sub-folder for the training data (data-<hash>/).
        string temp = "", target = "";
        var (ml, pipeline, data) = Setup(epochs: 3);
        byte[]? afterEpoch1 = null;
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("Epoch 2/3 (", StringComparison.Ordinal))
            {
                string folder = Directory.GetDirectories(_folder, "data-*").Single();
                temp = Path.Combine(folder, $"checkpoint.bin.{Environment.ProcessId}.tmp");
                target = Path.Combine(folder, "checkpoint.bin");
                afterEpoch1 = File.ReadAllBytes(target);
                File.CreateSymbolicLink(temp, "/dev/full");
            }
        };

        var failure = Record.Exception(() => pipeline.Fit(data));

        _output.WriteLine(failure?.ToString() ?? "no failure");
        failure.Should().NotBeNull("the save of epoch 2 fails");
        failure!.ToString().Should().Contain("epoch 2").And.Contain("previous checkpoint there is unchanged");
        afterEpoch1.Should().NotBeNull();
        File.ReadAllBytes(target).Should().Equal(afterEpoch1, "the failed save did not touch the previous checkpoint");
        File.Exists(temp).Should().BeFalse("the failed save cleans up after itself");

        // The next Fit with the folder loads it and resumes after epoch 1.
        var (again, resumedPipeline, resumedData) = Setup(epochs: 3);
        var messages = new List<string>();
        again.Log += (_, e) => messages.Add(e.Message);
        var model = resumedPipeline.Fit(resumedData);
        messages.Should().Contain(m => m.Contains("Resuming from") && m.Contains("after epoch 1 of 3"));
        using var classifier = ((IEnumerable<ITransformer>)model).OfType<AuxLstmClassifierTransformer>().Single();
        classifier.TrainingHistory.Should().HaveCount(3);
    }
}
