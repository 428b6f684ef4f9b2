using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.AuxRnn.Tests.Datasets;

namespace Microsoft.ML.AuxRnn.Tests.Samples;

/// <summary>Runs each sample's Main with tiny settings, as CI does: it must exit 0 and print its accuracy.</summary>
public class SampleTests
{
    [Fact]
    public void PixelMnistSampleRunsEndToEnd()
    {
        var (code, output, files) = RunSample(global::Samples.PixelMnist.Main, TestData.Path("mnist"), "--tiny");
        code.Should().Be(0, output);
        AccuracyOf(output).Should().BeInRange(0, 100);
        output.Should().MatchRegex(@"The first test digit is a \d \(p = ");
        files.Should().Contain("pixel-mnist.zip");
    }

    [Fact]
    public void DocumentClassificationSampleRunsEndToEnd()
    {
        var (code, output, files) = RunSample(global::Samples.DocumentClassification.Main, TestData.Path("dbpedia"), "--tiny");
        code.Should().Be(0, output);
        AccuracyOf(output).Should().BeInRange(0, 100);
        var classes = File.ReadAllLines(TestData.Path("dbpedia", "classes.txt"));
        Regex.Match(output, @"Ferry…"" is a (\w+)").Groups[1].Value.Should().BeOneOf(classes);
        files.Should().Contain("documents.zip");
    }

    [Fact]
    public void LongImageSequencesSampleRunsEndToEnd()
    {
        var (code, output, files) = RunSample(global::Samples.LongImageSequences.Main, TestData.Path("clothing128"), "--tiny", "--epochs", "1");
        code.Should().Be(0, output);
        AccuracyOf(output).Should().BeInRange(0, 100);
        output.Should().Contain("(64 steps each)").And.Contain("looks like a");
        files.Should().Contain("long-images.zip");
    }

    private static double AccuracyOf(string output)
    {
        var match = Regex.Match(output, @"Accuracy: ([\d.]+) ?%");
        match.Success.Should().BeTrue($"the sample prints its accuracy:\n{output}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Calls a sample's Main in a temporary working folder (samples save their model there), capturing stdout.</summary>
    private static (int Code, string Output, string[] Files) RunSample(Func<string[], int> main, params string[] args)
    {
        using var temp = new ViewReader.TempFolder();
        var previousOut = Console.Out;
        string previousDirectory = Environment.CurrentDirectory;
        var output = new StringWriter();
        try
        {
            Console.SetOut(output);
            Environment.CurrentDirectory = temp.Path;
            int code = main(args);
            return (code, output.ToString(), Directory.GetFiles(temp.Path).Select(f => Path.GetFileName(f)!).ToArray());
        }
        finally
        {
            Console.SetOut(previousOut);
            Environment.CurrentDirectory = previousDirectory;
        }
    }
}
