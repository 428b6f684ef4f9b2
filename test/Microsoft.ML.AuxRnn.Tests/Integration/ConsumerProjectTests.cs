using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

public class ConsumerProjectTests
{
    [Fact]
    public void AProjectOutsideTheSolutionReferencesTheLibraryAndTrains()
    {
        // Built in a temporary folder: no Directory.Build.props, no central package versions, no IsTorchSharpHost;
        // only a ProjectReference and the libtorch package, like a user's project.
        File.Exists(ConsumerProgram.DllPath).Should().BeTrue();
        var projectFolder = new DirectoryInfo(Path.GetDirectoryName(ConsumerProgram.DllPath)!).Parent!; // built with -o <project>/out
        File.Exists(Path.Combine(projectFolder.FullName, "Consumer.csproj")).Should().BeTrue();
        for (var dir = projectFolder.Parent; dir != null; dir = dir.Parent)
        {
            dir.GetFiles("*.sln").Should().BeEmpty("the consumer is built outside the repository");
            dir.GetFiles("Directory.Build.props").Should().BeEmpty("no repository build settings apply to the consumer");
            dir.GetFiles("Directory.Packages.props").Should().BeEmpty("no central package versions apply to the consumer");
        }

        var (exitCode, output) = ConsumerProgram.Run("demo");

        exitCode.Should().Be(0, output);
        var match = Regex.Match(output, @"accuracy=([0-9.]+)");
        match.Success.Should().BeTrue(output);
        double accuracy = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        accuracy.Should().BeGreaterThan(0.6, "rising and falling sequences are easy to tell apart (chance is 0.5)");
    }
}
