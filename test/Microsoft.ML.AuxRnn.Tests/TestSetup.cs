using System.Runtime.CompilerServices;
using Microsoft.ML.AuxRnn.Runtime;
using TorchSharp;

// TorchSharp tests share two cores: running classes in parallel makes each step 50x slower, not 2x.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Microsoft.ML.AuxRnn.Tests;

internal static class TestSetup
{
    /// <summary>One intra-op thread: deterministic, and never fighting another process for the two cores.</summary>
    [ModuleInitializer]
    internal static void Initialize()
    {
        TorchNativeLoader.EnsureInitialized();
        torch.set_num_threads(1);
    }
}

/// <summary>Where the shared test data lives: ../shared/data beside the repository root.</summary>
internal static class TestData
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine(new[] { Root }.Concat(parts).ToArray());

    private static string Find()
    {
        string? env = Environment.GetEnvironmentVariable("AUXRNN_DATA");
        if (!string.IsNullOrEmpty(env))
            return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "shared", "data");
            if (Directory.Exists(candidate) && dir.GetDirectories(".git").Length == 0)
                return candidate;
            candidate = System.IO.Path.Combine(dir.FullName, "..", "shared", "data");
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Microsoft.ML.AuxRnn.sln")) && Directory.Exists(candidate))
                return System.IO.Path.GetFullPath(candidate);
        }
        throw new DirectoryNotFoundException("../shared/data was not found beside the repository (set AUXRNN_DATA).");
    }
}
