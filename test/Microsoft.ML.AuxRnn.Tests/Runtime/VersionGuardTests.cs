using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Tests.Integration;

namespace Microsoft.ML.AuxRnn.Tests.Runtime;

/// <summary>An application that loads another Microsoft.ML release gets one clear error at first use, naming both versions.</summary>
public class VersionGuardTests
{
    [Fact]
    public void TheExpectedVersionIsThePinnedPackageAndThisProcessRunsIt()
    {
        string props = File.ReadAllText(Path.Combine(ConsumerProgram.RepositoryRoot(), "Directory.Packages.props"));
        MLNetVersionGuard.Expected.Should().Be(Regex.Match(props, "<MicrosoftMLVersion>(.*?)</MicrosoftMLVersion>").Groups[1].Value).And.Be("5.0.1");
        typeof(MLContext).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Should().StartWith("5.0.1+");
        MLNetVersionGuard.Check(); // the real, loaded assemblies pass
    }

    [Fact]
    public void AMismatchNamesTheExpectedAndTheLoadedVersions()
    {
        MLNetVersionGuard.Mismatch("5.0.1", new[] { ("Microsoft.ML.Core", (string?)"5.0.1+abc"), ("Microsoft.ML.Data", "5.0.1") }).Should().BeNull();

        string message = MLNetVersionGuard.Mismatch("5.0.1", new[] { ("Microsoft.ML.Core", (string?)"5.0.1+abc"), ("Microsoft.ML.Data", "4.0.2+def"), ("Microsoft.ML.ImageAnalytics", null) })!;
        message.Should().Contain("needs Microsoft.ML 5.0.1 exactly").And.Contain("Microsoft.ML.Data 4.0.2").And.Contain("Microsoft.ML.ImageAnalytics (unknown version)")
            .And.NotContain("Microsoft.ML.Core").And.Contain("Reference Microsoft.ML 5.0.1");
    }

    [Fact]
    public void EveryEntryPointChecksBeforeUsingMLNet()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(16, 3, 6));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions())).Fit(data);
        using var saved = new MemoryStream();
        ml.Model.Save(model, data.Schema, saved);

        MLNetVersionGuard.LoadedOverride = () => new[] { ("Microsoft.ML.Data", (string?)"5.1.0+0123") };
        try
        {
            var entryPoints = new Action[]
            {
                () => ml.Transforms.AuxLstmClassifier(),
                () => ml.Transforms.AuxLstmClassifier(new AuxLstmClassifierOptions()),
                () => ml.MulticlassClassification.Trainers.AuxLstm(),
                () => ml.MulticlassClassification.Trainers.AuxLstm(new AuxLstmClassifierOptions()),
                () => ml.Transforms.ImageToPixelSequence("Pixels", "Image"),
            };
            foreach (var entryPoint in entryPoints)
                entryPoint.Should().Throw<InvalidOperationException>().WithMessage("*needs Microsoft.ML 5.0.1 exactly*Microsoft.ML.Data 5.1.0*");

            saved.Position = 0;
            var load = () => new MLContext().Model.Load(saved, out _);
            var error = load.Should().Throw<Exception>().Which;
            Enumerable.Repeat(error, 10).Select((e, i) => Unwrap(e, i)).OfType<InvalidOperationException>()
                .Should().Contain(e => e.Message.Contains("needs Microsoft.ML 5.0.1 exactly") && e.Message.Contains("5.1.0"), "Model.Load reports the versions (ML.NET may wrap the error)");
        }
        finally
        {
            MLNetVersionGuard.LoadedOverride = null;
        }
        saved.Position = 0;
        var reloaded = new MLContext().Model.Load(saved, out _);
        reloaded.Should().NotBeNull("with the right version, the same file loads");
        foreach (var transformer in ((IEnumerable<ITransformer>)reloaded).Concat(model).OfType<IDisposable>())
            transformer.Dispose();
    }

    private static Exception? Unwrap(Exception e, int depth)
    {
        Exception? current = e;
        for (int i = 0; i < depth && current is not null; i++)
            current = current.InnerException;
        return current;
    }
}
