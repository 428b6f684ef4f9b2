using System.Net;
using Microsoft.ML.AuxRnn.Cli;
using Microsoft.ML.AuxRnn.Cli.Commands;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.AuxRnn.Tests.Datasets;
using Microsoft.ML.Data;
using Spectre.Console;
using static Microsoft.ML.AuxRnn.Tests.Cli.CliRunner;

namespace Microsoft.ML.AuxRnn.Tests.Cli;

public class CliTests
{
    [Fact]
    public void TinyDemoTrainsBothModelsAndReportsHeldOutAccuracy()
    {
        var result = Run("demo", "--tiny", "--json");

        result.ExitCode.Should().Be(0, result.Console);
        result.Console.Should().Contain("LSTM, truncated").And.Contain("r-LSTM, truncated").And.Contain("Held-out accuracy");
        var models = result.Document.GetProperty("models").EnumerateArray().ToArray();
        models.Select(m => m.GetProperty("auxiliaryLoss").GetString()).Should().Equal("None", "Reconstruct");
        models.Should().OnlyContain(m => m.GetProperty("testAccuracy").GetDouble() >= 0 && m.GetProperty("testAccuracy").GetDouble() <= 1);
        models.Should().OnlyContain(m => m.GetProperty("epochs").GetArrayLength() == 1, "the progress monitor saw the trainer's epoch line");
        result.Console.Should().MatchRegex(@"computing in (bfloat16|float32) \((Auto|Precision)[^)]*\)", "the command says which precision Auto chose");
    }

    [Theory]
    [InlineData("Computing in bfloat16 (mixed precision: float32 weights, optimizer state and losses) (Auto: the CPU has AVX-512 BF16).", "bfloat16 (Auto: the CPU has AVX-512 BF16)")]
    [InlineData("Computing in float32 (Precision = Float32).", "float32 (Precision = Float32)")]
    [InlineData("Epoch 1/3 (joint): loss 0.5, 1.0 s", null)]
    public void ProgressMonitorReadsThePrecisionLine(string message, string? expected) =>
        TrainingMonitor.TryParsePrecision(message).Should().Be(expected);

    [Fact]
    public void TrainEvaluatePredictOnPermutedMnistUseTheRecordedPermutation()
    {
        using var temp = new ViewReader.TempFolder();
        string model = temp.File("mnist.zip");
        var train = Run(new[] { "train", "--data", TestData.Path("mnist"), "--max-rows", "64", "--max-test-rows", "40",
            "--permutation-seed", "11", "--truncation-length", "none", "--out", model, "--json" }.Concat(TinyModel).ToArray());

        train.ExitCode.Should().Be(0, train.Console);
        File.Exists(model).Should().BeTrue();
        var doc = train.Document;
        doc.GetProperty("permutationSeed").GetInt32().Should().Be(11);
        doc.GetProperty("options").GetProperty("HiddenSize").GetInt32().Should().Be(8, "options map one to one");
        doc.GetProperty("test").GetProperty("rows").GetInt64().Should().Be(40, "the folder's t10k files are the test split");
        train.Console.Should().Contain("Confusion matrix").And.Contain("Per class");

        var evaluate = Run("evaluate", "--model", model, "--data", TestData.Path("mnist"), "--max-rows", "40", "--json");
        evaluate.ExitCode.Should().Be(0, evaluate.Console);
        evaluate.Document.GetProperty("result").GetProperty("accuracy").GetDouble()
            .Should().Be(doc.GetProperty("test").GetProperty("accuracy").GetDouble(), "evaluate reads t10k with the model's permutation");

        // predict reads PNG files through ImageToPixelSequence with the recorded seed: the probabilities must equal
        // the model's scores of the same t10k images read from the idx files with that seed.
        string[] pngs = Directory.GetDirectories(TestData.Path("mnist", "png-sample")).Order().Take(3)
            .Select(d => Directory.GetFiles(d, "*.png").Order().First()).ToArray();
        var predict = Run(new[] { "predict", "--model", model, "--top", "10", "--json" }.Concat(pngs).ToArray());
        predict.ExitCode.Should().Be(0, predict.Console);

        var ml = new MLContext(seed: 0);
        var loaded = ml.Model.Load(model, out _);
        var idx = AuxRnnDatasets.LoadMnist(ml, TestData.Path("mnist", "t10k-images-idx3-ubyte.gz"), TestData.Path("mnist", "t10k-labels-idx1-ubyte.gz"), permutationSeed: 11);
        var scores = ViewReader.Vectors(loaded.Transform(idx), "Score");
        var predictions = predict.Document.GetProperty("predictions").EnumerateArray().ToArray();
        predictions.Should().HaveCount(3);
        for (int i = 0; i < pngs.Length; i++)
        {
            int index = int.Parse(Path.GetFileNameWithoutExtension(pngs[i]));
            var top = predictions[i].GetProperty("top").EnumerateArray().ToDictionary(t => t.GetProperty("label").GetString()!, t => t.GetProperty("probability").GetSingle());
            for (int c = 0; c < 10; c++)
                top[c.ToString()].Should().BeApproximately(scores[index][c], 1e-6f, $"{pngs[i]} is t10k image {index}");
        }
    }

    [Fact]
    public void TrainsOnDbpediaCsvWithTheCharacterFeaturizerInsideTheModel()
    {
        using var temp = new ViewReader.TempFolder();
        string model = temp.File("dbpedia.zip");
        var train = Run(new[] { "train", "--data", TestData.Path("dbpedia", "train.csv"), "--max-rows", "48", "--no-evaluate", "--out", model, "--json" }
            .Concat(TinyModel).ToArray());
        train.ExitCode.Should().Be(0, train.Console);
        train.Document.GetProperty("format").GetString().Should().Be("csv");
        train.Document.GetProperty("classes").GetArrayLength().Should().Be(14);

        string text = temp.File("doc.txt");
        File.WriteAllText(text, "The Mersey Ferry is a boat service across the river Mersey in England.");
        var predict = Run("predict", "--model", model, text, "--json");
        predict.ExitCode.Should().Be(0, predict.Console);
        string label = predict.Document.GetProperty("predictions")[0].GetProperty("label").GetString()!;
        File.ReadAllLines(TestData.Path("dbpedia", "classes.txt")).Should().Contain(label);

        var evaluate = Run("evaluate", "--model", model, "--data", TestData.Path("dbpedia"), "--max-rows", "30", "--json");
        evaluate.ExitCode.Should().Be(0, evaluate.Console);
        evaluate.Document.GetProperty("result").GetProperty("rows").GetInt64().Should().Be(30);
    }

    [Fact]
    public void TrainsOnAnImageFolderWithSplitsAndPredictsImageFiles()
    {
        using var temp = new ViewReader.TempFolder();
        string model = temp.File("clothes.zip");
        var train = Run(new[] { "train", "--data", TestData.Path("clothing128"), "--format", "images", "--image-size", "6", "--channels", "rgb",
            "--max-rows", "3", "--out", model, "--json" }.Concat(TinyModel).ToArray());
        train.ExitCode.Should().Be(0, train.Console);
        train.Document.GetProperty("options").GetProperty("StepSize").GetInt32().Should().Be(3, "RGB pixels are 3 values per step");
        train.Document.GetProperty("test").GetProperty("rows").GetInt64().Should().Be(30, "test/ holds 10 classes, 3 images each were read");

        string jpg = Directory.GetFiles(TestData.Path("clothing128", "test", "hat"), "*.jpg").Order().First();
        var predict = Run("predict", "--model", model, jpg, "--json");
        predict.ExitCode.Should().Be(0, predict.Console);
        Directory.GetDirectories(TestData.Path("clothing128", "test")).Select(Path.GetFileName)
            .Should().Contain(predict.Document.GetProperty("predictions")[0].GetProperty("label").GetString());
    }

    [Fact]
    public void EveryClassifierOptionHasACommandLineOption()
    {
        var simple = typeof(AuxLstmClassifierOptions).GetProperties()
            .Where(p => p.CanWrite && p.PropertyType != typeof(IDataView) && p.PropertyType != typeof(CancellationToken) && !p.Name.EndsWith("ColumnName", StringComparison.Ordinal))
            .Select(p => p.Name).ToArray();
        OptionsBinder.Members.Select(m => m.Name).Should().BeEquivalentTo(simple);

        var line = Microsoft.ML.AuxRnn.Cli.CommandLine.Parse(new[] { "train", "--hidden-size", "12", "--truncation-length", "none", "--auxiliary-loss", "predict",
            "--reverse-reconstruction", "false", "--learning-rate", "0.01", "--optimizer", "adam", "--max-training-time", "1.5m" }, OptionsBinder.BooleanOptionNames);
        var options = new AuxLstmClassifierOptions();
        OptionsBinder.Bind(line, options);
        options.HiddenSize.Should().Be(12);
        options.TruncationLength.Should().BeNull();
        options.AuxiliaryLoss.Should().Be(AuxiliaryLoss.Predict);
        options.ReverseReconstruction.Should().BeFalse();
        options.LearningRate.Should().Be(0.01);
        options.Optimizer.Should().Be(AuxOptimizer.Adam);
        options.MaxTrainingTime.Should().Be(TimeSpan.FromSeconds(90));
        OptionsBinder.Convert("00:02:00", typeof(TimeSpan?), "max-training-time").Should().Be(TimeSpan.FromMinutes(2));
        OptionsBinder.Convert("none", typeof(TimeSpan?), "max-training-time").Should().BeNull();

        var help = Run("help", "train");
        help.ExitCode.Should().Be(0);
        help.Console.Should().Contain("--hidden-size").And.Contain("--truncation-length").And.Contain("--scheduled-sampling-probability");
    }

    [Theory]
    [InlineData(new[] { "train", "--data", "/nowhere/at/all" }, "does not exist")]
    [InlineData(new[] { "train", "--data", "DATA/mnist", "--hidden-size", "0" }, "HiddenSize")]
    [InlineData(new[] { "train", "--data", "DATA/mnist", "--hiden-size", "8" }, "Unknown option*--hiden-size")]
    [InlineData(new[] { "train", "--data", "DATA/mnist", "--auxiliary-loss", "sideways" }, "none, reconstruct, predict")]
    [InlineData(new[] { "train", "--data", "DATA/mnist", "--image-size", "64" }, "--image-size*apply to --format images")]
    [InlineData(new[] { "evaluate", "--data", "DATA/mnist" }, "Missing --model")]
    [InlineData(new[] { "frobnicate" }, "Unknown command")]
    public void BadCommandLinesExitWithCode2AndSayWhy(string[] args, string message)
    {
        var result = Run(args.Select(a => a.Replace("DATA", TestData.Root)).ToArray());
        result.ExitCode.Should().Be(2);
        result.Console.Should().Match($"*{message}*");
    }

    [Fact]
    public void DownloadOfflineFailsWithWhatToPassInstead()
    {
        using var temp = new ViewReader.TempFolder();
        string? before = Environment.GetEnvironmentVariable("AUXRNN_DOWNLOAD_MIRROR");
        Environment.SetEnvironmentVariable("AUXRNN_DOWNLOAD_MIRROR", "http://127.0.0.1:9/"); // nothing listens there
        try
        {
            var result = Run("download", "mnist", "--cache", temp.Path);
            result.ExitCode.Should().Be(2);
            result.Console.Should().Contain("Could not download MNIST").And.Contain("offline").And.Contain("--data FOLDER")
                .And.Contain("built-in demonstration");
            Directory.GetFiles(temp.Path, "*", SearchOption.AllDirectories).Should().BeEmpty("nothing partial is kept");
        }
        finally
        {
            Environment.SetEnvironmentVariable("AUXRNN_DOWNLOAD_MIRROR", before);
        }
    }

    [Fact]
    public void DownloadRejectsAFileWhoseChecksumIsWrong()
    {
        using var temp = new ViewReader.TempFolder();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(new StringWriter()) });
        var act = () => DownloadCommand.Fetch(DownloadCommand.Mnist, temp.Path, console, new FixedResponse("not the MNIST file"u8.ToArray()));
        act.Should().Throw<InvalidDataException>().WithMessage("*train-images-idx3-ubyte.gz*failed its checksum*expected f68b3c2dcbeaaa9fbdd348bbdeb94873*");
        File.Exists(Path.Combine(temp.Path, "mnist", "train-images-idx3-ubyte.gz")).Should().BeFalse();
    }

    [Theory]
    [InlineData("Epoch 3/10: loss 0.1234, accuracy 97.1 %, 12.3 s", 3, 10, 0.1234, 0.971, 12.3, false)]
    [InlineData("Pre-training epoch 1/2: auxiliary loss 5.5, 4.0 s", 1, 2, null, null, 4.0, true)]
    [InlineData("Epoch 1/3 (pre-training): auxiliary loss 5.5123, learning rate 0.001, 4.0 s (40 ms per batch)", 1, 3, null, null, 4.0, true)]
    [InlineData("Epoch 3/3 (joint): loss 0.7500, auxiliary loss 2.2500, train accuracy 75.0 %, validation accuracy 70.00 %, learning rate 0.0005, 12.5 s (125 ms per batch)", 3, 3, 0.75, 0.75, 12.5, false)]
    [InlineData("Epoch 2/4: supervised loss 1.5, auxiliary loss 0.25, accuracy 50.0%, validation accuracy 40.0 %, 3 s", 2, 4, 1.5, 0.5, 3.0, false)]
    public void ProgressMonitorReadsTheTrainersEpochLines(string message, int epoch, int of, double? loss, double? accuracy, double seconds, bool pretraining)
    {
        var line = TrainingMonitor.TryParseEpoch(message)!;
        line.Should().NotBeNull();
        (line.Epoch, line.Of, line.Pretraining).Should().Be((epoch, of, pretraining));
        line.Loss.Should().Be(loss);
        line.Accuracy.Should().BeApproximately(accuracy, 1e-9);
        line.Seconds.Should().BeApproximately(seconds, 1e-9);
        TrainingMonitor.TryParseEpoch("AuxLstmClassifier: 100 rows").Should().BeNull();
    }

    [Fact]
    public void ProgressMonitorReadsAuxiliaryLossAndValidationAccuracy()
    {
        var line = TrainingMonitor.TryParseEpoch(
            "Epoch 3/3 (joint): loss 0.7500, auxiliary loss 2.2500, train accuracy 75.0 %, validation accuracy 70.00 %, learning rate 0.0005, 12.5 s (125 ms per batch)")!;
        line.AuxiliaryLoss.Should().Be(2.25);
        line.ValidationAccuracy.Should().BeApproximately(0.70, 1e-9);
        line.Accuracy.Should().BeApproximately(0.75, 1e-9);
    }

    private sealed class FixedResponse(byte[] body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) });
    }
}
