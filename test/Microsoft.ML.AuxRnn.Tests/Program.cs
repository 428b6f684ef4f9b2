namespace Microsoft.ML.AuxRnn.Tests;

/// <summary>
/// The test assembly's entry point (instead of the one Microsoft.NET.Test.Sdk generates, which does nothing): under the
/// test runner it is never called. Tests that must measure in a fresh process start this assembly as a child,
/// <c>dotnet Microsoft.ML.AuxRnn.Tests.dll COMMAND ARGS</c>; the module initializer (TestSetup) runs there as here.
/// </summary>
internal static class Program
{
    public static int Main(string[] args) => args.FirstOrDefault() switch
    {
        Reliability.MemoryEstimateTests.MeasureStepCommand => Reliability.MemoryEstimateTests.MeasureStepInThisProcess(args[1..]),
        null => 0,
        var command => Unknown(command),
    };

    private static int Unknown(string command)
    {
        Console.Error.WriteLine($"Unknown command '{command}'.");
        return 2;
    }
}
