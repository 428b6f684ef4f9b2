using System.Diagnostics;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// The consumer program of test/ConsumerProject, built once per test run in a temporary folder outside the
/// repository (so none of the repository's Directory.* settings apply), with a project reference to the library's
/// absolute path. Tests run it as a child process: to train like a user would, and to load saved models in a
/// fresh process.
/// </summary>
internal static class ConsumerProgram
{
    private static readonly Lazy<string> Built = new(Build, LazyThreadSafetyMode.ExecutionAndPublication);

#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    /// <summary>The built Consumer.dll (built on first use).</summary>
    public static string DllPath => Built.Value;

    /// <summary>Runs <c>dotnet Consumer.dll args</c>; returns its exit code and output (stdout and stderr).</summary>
    public static (int ExitCode, string Output) Run(params string[] args) => RunWith(new Dictionary<string, string?>(), args);

    /// <summary>As <see cref="Run"/>, with <paramref name="environment"/> set in the child (a null value removes the variable).</summary>
    public static (int ExitCode, string Output) RunWith(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = Path.GetDirectoryName(DllPath)! };
        start.ArgumentList.Add(DllPath);
        foreach (string arg in args)
            start.ArgumentList.Add(arg);
        // Same intra-op thread count as this test process (TestSetup), so scores can be compared bit for bit.
        start.Environment["AUXRNN_TORCH_THREADS"] = "1";
        foreach (var (name, value) in environment)
        {
            if (value is null)
                start.Environment.Remove(name);
            else
                start.Environment[name] = value;
        }
        return Execute(start, TimeSpan.FromMinutes(5));
    }

    /// <summary>
    /// Starts <c>dotnet Consumer.dll args</c> with stdout and stderr redirected (same environment as <see cref="Run"/>);
    /// the caller reads its output, and waits for it or kills it.
    /// </summary>
    public static Process Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = Path.GetDirectoryName(DllPath)! };
        start.ArgumentList.Add(DllPath);
        foreach (string arg in args)
            start.ArgumentList.Add(arg);
        start.Environment["AUXRNN_TORCH_THREADS"] = "1";
        Prepare(start);
        return Process.Start(start)!;
    }

    private static string Build()
    {
        string repo = RepositoryRoot();
        string source = Path.Combine(repo, "test", "ConsumerProject");
        // One folder per repository and configuration, outside the repository; reused so the build is incremental.
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(repo)))[..12];
        string folder = Path.Combine(Path.GetTempPath(), $"auxrnn-consumer-{hash}-{Configuration}");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);

        string library = Path.Combine(repo, "src", "Microsoft.ML.AuxRnn", "Microsoft.ML.AuxRnn.csproj");
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = folder };
        foreach (string arg in new[] { "build", "-c", Configuration, $"-p:AuxRnnProject={library}", "-nodeReuse:false", "-p:UseSharedCompilation=false", "-v:q" })
            start.ArgumentList.Add(arg);
        var (exitCode, output) = Execute(start, TimeSpan.FromMinutes(8));
        if (exitCode != 0)
            throw new InvalidOperationException($"Building the consumer project in {folder} failed ({exitCode}):\n{output}");
        string dll = Path.Combine(folder, "bin", Configuration, "net10.0", "Consumer.dll");
        if (!File.Exists(dll))
            throw new FileNotFoundException("The consumer build succeeded but produced no Consumer.dll.\n" + output, dll);
        return dll;
    }

    private static void Prepare(ProcessStartInfo start)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        // The test host's MSBuild variables must not leak into a child build or program.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
    }

    private static (int ExitCode, string Output) Execute(ProcessStartInfo start, TimeSpan timeout)
    {
        Prepare(start);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{start.FileName} {string.Join(' ', start.ArgumentList)}' ran longer than {timeout}.");
        }
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.AuxRnn.sln")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException("The repository root (Microsoft.ML.AuxRnn.sln) was not found above the test assembly.");
    }

    /// <summary>Reads the scores file written by <c>Consumer score</c>.</summary>
    public static float[][] ReadScores(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        var rows = new float[reader.ReadInt32()][];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = new float[reader.ReadInt32()];
            for (int k = 0; k < rows[i].Length; k++)
                rows[i][k] = reader.ReadSingle();
        }
        return rows;
    }

    /// <summary>Saves <paramref name="model"/> and <paramref name="data"/>, scores them in a child process and returns its scores.</summary>
    public static float[][] ScoreInChildProcess(MLContext ml, ITransformer model, IDataView data, string scoreColumn = "Score")
    {
        string folder = Directory.CreateTempSubdirectory("auxrnn-child-").FullName;
        try
        {
            string modelPath = Path.Combine(folder, "model.zip");
            string dataPath = Path.Combine(folder, "data.idv");
            string scoresPath = Path.Combine(folder, "scores.bin");
            ml.Model.Save(model, data.Schema, modelPath);
            using (var stream = File.Create(dataPath))
                ml.Data.SaveAsBinary(data, stream);
            var (exitCode, output) = Run("score", modelPath, dataPath, scoresPath, scoreColumn);
            exitCode.Should().Be(0, "the child process should load and score the model:\n" + output);
            return ReadScores(scoresPath);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
