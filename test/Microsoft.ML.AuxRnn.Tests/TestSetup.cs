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

/// <summary>
/// The test fixtures: small cuts of MNIST, CIFAR-10, DBpedia and clothing photos committed under test/Fixtures and
/// copied beside the test assembly, so the suite passes from a clone alone (see test/Fixtures/README.md).
/// </summary>
internal static class TestData
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine(new[] { Root }.Concat(parts).ToArray());

    private static string Find()
    {
        string copied = System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures");
        if (Directory.Exists(copied))
            return copied;
        throw new DirectoryNotFoundException($"The test fixtures were not copied to {copied}: build the test project (it copies test/Fixtures).");
    }
}

/// <summary>
/// The full public data sets, for opt-in long tests only: the folder named by $AUXRNN_DATA (laid out as
/// test/Fixtures is). The default test run never reads it.
/// </summary>
internal static class FullData
{
    public static string? Root { get; } = Environment.GetEnvironmentVariable("AUXRNN_DATA") is { Length: > 0 } root ? root : null;

    public static string Path(params string[] parts) =>
        System.IO.Path.Combine(new[] { Root ?? throw new InvalidOperationException("Set AUXRNN_DATA to the folder of the full data sets (mnist/, cifar10/, dbpedia/, clothing128/).") }
            .Concat(parts).ToArray());
}
