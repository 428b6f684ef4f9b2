using System.Reflection;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Runtime;

/// <summary>
/// Checks, at the library's first use, that the process runs the Microsoft.ML release the library was built
/// against. The library compiles against members ML.NET keeps internal (see build/Publicize.targets), which may change
/// in any release; ML.NET's assemblies all carry assembly version 1.0.0.0, so the runtime binds another release without
/// complaint and the mismatch would surface as a <see cref="MissingMethodException"/> deep inside Fit or Load. This
/// turns it into one clear error naming both versions.
/// </summary>
internal static class MLNetVersionGuard
{
    /// <summary>The Microsoft.ML version the library was built against (from Directory.Packages.props, stamped at build time).</summary>
    public static string Expected { get; } =
        typeof(MLNetVersionGuard).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "MicrosoftMLVersion")?.Value
        ?? throw new InvalidOperationException("Microsoft.ML.AuxRnn was built without its MicrosoftMLVersion metadata.");

    private static readonly Lazy<string?> Problem = new(() => Mismatch(Expected, Loaded()));

    /// <summary>For tests: the (assembly, product version) pairs to check instead of the loaded ones.</summary>
    internal static Func<IEnumerable<(string Assembly, string? Version)>>? LoadedOverride { get; set; }

    /// <summary>Throws <see cref="InvalidOperationException"/>, naming the versions, when the loaded Microsoft.ML is not the expected release.</summary>
    public static void Check()
    {
        string? problem = LoadedOverride is { } fake ? Mismatch(Expected, fake()) : Problem.Value;
        if (problem is not null)
            throw new InvalidOperationException(problem);
    }

    /// <summary>The ML.NET assemblies whose internals the library uses, with their product versions ("5.0.1+commit").</summary>
    private static IEnumerable<(string Assembly, string? Version)> Loaded()
    {
        foreach (var assembly in new[] { typeof(MLContext).Assembly, typeof(IDataView).Assembly, typeof(TextLoader).Assembly, typeof(MLImage).Assembly }.Distinct())
            yield return (assembly.GetName().Name ?? assembly.FullName ?? "?", assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion);
    }

    /// <summary>The error message when one of <paramref name="loaded"/> is not release <paramref name="expected"/>; null when all are.</summary>
    internal static string? Mismatch(string expected, IEnumerable<(string Assembly, string? Version)> loaded)
    {
        var wrong = loaded
            .Select(a => (a.Assembly, Version: a.Version?.Split('+')[0]))
            .Where(a => a.Version != expected)
            .ToList();
        if (wrong.Count == 0)
            return null;
        string found = string.Join(", ", wrong.Select(a => $"{a.Assembly} {a.Version ?? "(unknown version)"}"));
        string library = typeof(MLNetVersionGuard).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0] ?? "?";
        return $"Microsoft.ML.AuxRnn {library} needs Microsoft.ML {expected} exactly, but this application loaded {found}. " +
               $"The library uses ML.NET members that change between releases. Reference Microsoft.ML {expected} " +
               $"(and Microsoft.ML.ImageAnalytics {expected}) in the application, or use a Microsoft.ML.AuxRnn built for the Microsoft.ML release you need.";
    }
}
