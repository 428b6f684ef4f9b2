using System.Reflection;
using System.Runtime.Loader;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.ML.AuxRnn.Tests.Datasets;

namespace Microsoft.ML.AuxRnn.Tests.Docs;

/// <summary>
/// Every C# block of README.md is compiled as the program a user would paste into <c>dotnet new console</c>
/// (top-level statements, the SDK's implicit usings) and run on the test fixtures, so the documentation cannot drift
/// from the API. Each block is preceded by <c>&lt;!-- README test: args A B; prints "X" "Y" --&gt;</c>: the
/// arguments (paths under test/Fixtures) and text its output must contain.
/// </summary>
public class ReadmeTests
{
    private static readonly string Readme = Path.Combine(AppContext.BaseDirectory, "Docs", "README.md");

    public static TheoryData<int> Blocks()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < CSharpBlocks().Count; i++)
            data.Add(i);
        return data;
    }

    internal sealed record Block(int Line, string Code, string[] Args, string[] Prints);

    internal static List<Block> CSharpBlocks()
    {
        string text = File.ReadAllText(Readme).Replace("\r\n", "\n");
        var blocks = new List<Block>();
        foreach (Match m in Regex.Matches(text, @"^```(csharp|cs|c#)\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline))
        {
            int line = text[..m.Index].Count(c => c == '\n') + 1;
            string before = text[..m.Index].TrimEnd('\n');
            string previous = before[(before.LastIndexOf('\n') + 1)..];
            var marker = Regex.Match(previous, @"^<!-- README test: args ?(.*?); prints (.*?) -->$");
            marker.Success.Should().BeTrue($"the C# block at README.md line {line} is preceded by a '<!-- README test: args …; prints \"…\" -->' line, found '{previous}'");
            string[] args = marker.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => TestData.Path(a.Split('/'))).ToArray();
            string[] prints = Regex.Matches(marker.Groups[2].Value, "\"([^\"]*)\"").Select(p => p.Groups[1].Value).ToArray();
            blocks.Add(new Block(line, m.Groups[2].Value, args, prints));
        }
        return blocks;
    }

    [Fact]
    public void ReadmeHasCSharpBlocksAndEachIsMarkedForThisTest()
    {
        var blocks = CSharpBlocks();
        blocks.Should().NotBeEmpty();
        blocks.Should().OnlyContain(b => b.Prints.Length > 0, "each block says what it prints, so running it checks something");
        Blocks().Count.Should().Be(blocks.Count);
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public void CSharpBlockCompilesAndRunsAsWritten(int index)
    {
        var block = CSharpBlocks()[index];
        var assembly = Compile(block.Code, $"ReadmeBlock{index}");

        using var temp = new ViewReader.TempFolder();
        var previousOut = Console.Out;
        string previousDirectory = Environment.CurrentDirectory;
        var output = new StringWriter();
        try
        {
            Console.SetOut(output);
            Environment.CurrentDirectory = temp.Path;
            object? result = assembly.EntryPoint!.Invoke(null, new object[] { block.Args });
            if (result is Task task)
                task.GetAwaiter().GetResult();
            else if (result is int code)
                code.Should().Be(0);
        }
        catch (TargetInvocationException e)
        {
            throw new InvalidOperationException($"README.md's C# block at line {block.Line} threw:\n{e.InnerException}\n--- output:\n{output}", e.InnerException);
        }
        finally
        {
            Console.SetOut(previousOut);
            Environment.CurrentDirectory = previousDirectory;
        }
        foreach (string text in block.Prints)
            output.ToString().Should().Contain(text, $"README.md's block at line {block.Line} prints it");
    }

    /// <summary>The SDK's implicit usings of a console project (Microsoft.NET.Sdk, ImplicitUsings=enable).</summary>
    private const string ImplicitUsings = """
        global using global::System;
        global using global::System.Collections.Generic;
        global using global::System.IO;
        global using global::System.Linq;
        global using global::System.Net.Http;
        global using global::System.Threading;
        global using global::System.Threading.Tasks;
        """;

    internal static Assembly Compile(string code, string name)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = new[] { CSharpSyntaxTree.ParseText(ImplicitUsings, parse), CSharpSyntaxTree.ParseText(code, parse, path: "README.md") };
        var compilation = CSharpCompilation.Create(name, trees, References.Value,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var stream = new MemoryStream();
        var emit = compilation.Emit(stream);
        var problems = emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error || (d.Severity == DiagnosticSeverity.Warning && d.WarningLevel <= 1 && d.Id != "CS8019")).ToList();
        problems.Should().BeEmpty($"README.md's C# compiles without errors or warnings:\n{code}");
        stream.Position = 0;
        return new AssemblyLoadContext(name, isCollectible: false).LoadFromStream(stream);
    }

    /// <summary>What a user's project compiles against: the framework and this test's package assemblies (ML.NET, TorchSharp, the library).</summary>
    private static readonly Lazy<List<MetadataReference>> References = new(() =>
    {
        _ = typeof(AuxLstmClassifierEstimator).Assembly;
        _ = typeof(Microsoft.ML.Data.MLImage).Assembly;
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Concat(AppDomain.CurrentDomain.GetAssemblies().Where(a => !a.IsDynamic && a.Location.Length > 0).Select(a => a.Location))
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            .DistinctBy(Path.GetFileName, StringComparer.OrdinalIgnoreCase)
            .Where(IsManaged);
        return paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    });

    private static bool IsManaged(string path)
    {
        try
        {
            AssemblyName.GetAssemblyName(path);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
