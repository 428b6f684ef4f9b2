using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// dotnet pack gives installable packages, and a user's program (test/ConsumerProject) builds against the packed
/// library from a local folder feed, not a project reference, and publishes with -o.
/// </summary>
public class PackagingTests
{
    private static (int ExitCode, string Output) Dotnet(string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory };
        foreach (string arg in args)
            start.ArgumentList.Add(arg);
        return ConsumerProgram.Execute(start, timeout);
    }

    private static XElement Nuspec(string nupkg, string id)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        using var stream = zip.GetEntry(id + ".nuspec")!.Open();
        return XDocument.Load(stream).Root!;
    }

    private static string[] Entries(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        return zip.Entries.Select(e => e.FullName).ToArray();
    }

    [Fact]
    public void TheLibraryPacksAndAConsumerPublishedWithOutputFolderRunsAgainstThePackage()
    {
        string repo = ConsumerProgram.RepositoryRoot();
        string temp = Directory.CreateTempSubdirectory("auxrnn-pack-").FullName;
        // A version of its own, so NuGet's global cache never hands this test an older build of the package.
        string version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        string nugetCache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } cache
            ? cache : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        try
        {
            string feed = Path.Combine(temp, "feed");
            var pack = Dotnet(repo, TimeSpan.FromMinutes(5), "pack", Path.Combine(repo, "src", "Microsoft.ML.AuxRnn", "Microsoft.ML.AuxRnn.csproj"),
                "-c", "Release", "-o", feed, $"-p:Version={version}", "-nodeReuse:false", "-p:UseSharedCompilation=false");
            pack.ExitCode.Should().Be(0, pack.Output);

            string nupkg = Path.Combine(feed, $"Microsoft.ML.AuxRnn.{version}.nupkg");
            File.Exists(Path.Combine(feed, $"Microsoft.ML.AuxRnn.{version}.snupkg")).Should().BeTrue("symbols are packed");
            Entries(Path.Combine(feed, $"Microsoft.ML.AuxRnn.{version}.snupkg")).Should().Contain("lib/net10.0/Microsoft.ML.AuxRnn.pdb");
            Entries(nupkg).Should().Contain(new[] { "lib/net10.0/Microsoft.ML.AuxRnn.dll", "lib/net10.0/Microsoft.ML.AuxRnn.xml", "README.md" });

            var nuspec = Nuspec(nupkg, "Microsoft.ML.AuxRnn");
            XNamespace ns = nuspec.Name.Namespace;
            var metadata = nuspec.Element(ns + "metadata")!;
            metadata.Element(ns + "license")!.Value.Should().Be("MIT");
            metadata.Element(ns + "readme")!.Value.Should().Be("README.md");
            metadata.Element(ns + "tags")!.Value.Should().Contain("ML.NET").And.Contain("LSTM");
            metadata.Element(ns + "repository")!.Attribute("type")!.Value.Should().Be("git");
            metadata.Element(ns + "repository")!.Attribute("commit")!.Value.Should().MatchRegex("^[0-9a-f]{40}$");
            var dependencies = metadata.Descendants(ns + "dependency").ToDictionary(d => d.Attribute("id")!.Value, d => d.Attribute("version")!.Value);
            dependencies.Should().BeEquivalentTo(new Dictionary<string, string>
            {
                ["Microsoft.ML"] = "[5.0.1]",
                ["Microsoft.ML.ImageAnalytics"] = "[5.0.1]",
                ["TorchSharp"] = "0.107.0",
            }, "the Publicizer, Mono.Cecil and the native backend are not the user's dependencies");

            // The consumer program, outside the repository, with a NuGet.config that adds the folder feed to the user's sources.
            string app = Path.Combine(temp, "app");
            Directory.CreateDirectory(app);
            foreach (string file in Directory.GetFiles(Path.Combine(repo, "test", "ConsumerProject")))
                File.Copy(file, Path.Combine(app, Path.GetFileName(file)));
            File.WriteAllText(Path.Combine(app, "NuGet.config"),
                $"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <packageSources>\n    <add key=\"auxrnn-local\" value=\"{feed}\" />\n  </packageSources>\n</configuration>\n");
            string output = Path.Combine(temp, "out");
            var publish = Dotnet(app, TimeSpan.FromMinutes(8), "publish", "-c", "Release", "-o", output, $"-p:AuxRnnPackageVersion={version}",
                "-nodeReuse:false", "-p:UseSharedCompilation=false");
            publish.ExitCode.Should().Be(0, publish.Output);

            var assets = File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"));
            assets.Should().Contain($"\"Microsoft.ML.AuxRnn/{version}\"").And.Contain("\"type\": \"package\"");
            assets.Should().NotContain("Microsoft.ML.AuxRnn.csproj", "the library comes from the package, not a project reference");
            var published = Directory.GetFiles(output).Select(Path.GetFileName).ToArray();
            published.Should().Contain(new[] { "Consumer.dll", "Microsoft.ML.AuxRnn.dll", "TorchSharp.dll" });
            published.Should().NotContain(f => f!.StartsWith("Publicizer", StringComparison.Ordinal) || f.StartsWith("Mono.Cecil", StringComparison.Ordinal),
                "build-time tools stay out of the application");

            var start = new ProcessStartInfo("dotnet") { WorkingDirectory = output };
            start.ArgumentList.Add(Path.Combine(output, "Consumer.dll"));
            start.ArgumentList.Add("demo");
            start.Environment["AUXRNN_TORCH_THREADS"] = "1";
            var run = ConsumerProgram.Execute(start, TimeSpan.FromMinutes(3));
            run.ExitCode.Should().Be(0, run.Output);
            run.Output.Should().MatchRegex(@"accuracy=\d\.\d{4}");
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
            string cached = Path.Combine(nugetCache, "microsoft.ml.auxrnn", version);
            if (Directory.Exists(cached))
                Directory.Delete(cached, recursive: true);
        }
    }

    [Fact]
    public void TheCommandPacksAsADotnetTool()
    {
        string repo = ConsumerProgram.RepositoryRoot();
        string feed = Directory.CreateTempSubdirectory("auxrnn-tool-").FullName;
        try
        {
            var pack = Dotnet(repo, TimeSpan.FromMinutes(5), "pack", Path.Combine(repo, "src", "Microsoft.ML.AuxRnn.Cli", "Microsoft.ML.AuxRnn.Cli.csproj"),
                "-c", "Release", "-o", feed, "-nodeReuse:false", "-p:UseSharedCompilation=false");
            pack.ExitCode.Should().Be(0, pack.Output);
            string nupkg = Directory.GetFiles(feed, "Microsoft.ML.AuxRnn.Cli.*.nupkg").Single(f => !f.EndsWith(".snupkg", StringComparison.Ordinal));
            var metadata = Nuspec(nupkg, "Microsoft.ML.AuxRnn.Cli");
            XNamespace ns = metadata.Name.Namespace;
            metadata.Descendants(ns + "packageType").Select(t => t.Attribute("name")!.Value).Should().Contain("DotnetTool");
            metadata.Descendants(ns + "license").Single().Value.Should().Be("MIT");
            var entries = Entries(nupkg);
            entries.Should().Contain(e => e.EndsWith("/any/DotnetToolSettings.xml", StringComparison.Ordinal));
            entries.Should().Contain(e => e.EndsWith("/any/auxrnn.dll", StringComparison.Ordinal));
            entries.Should().NotContain(e => e.Contains("Publicizer", StringComparison.Ordinal) || e.Contains("Mono.Cecil", StringComparison.Ordinal));
            using var zip = ZipFile.OpenRead(nupkg);
            using var settings = new StreamReader(zip.Entries.Single(e => e.FullName.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal)).Open());
            settings.ReadToEnd().Should().Contain("<Command Name=\"auxrnn\" EntryPoint=\"auxrnn.dll\"");
        }
        finally
        {
            Directory.Delete(feed, recursive: true);
        }
    }
}
