using System.Diagnostics;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>Process memory figures from /proc (Linux): peak resident set, reset between settings.</summary>
internal static class Measure
{
    /// <summary>Resets the kernel's peak-RSS counter (VmHWM) to the current RSS.</summary>
    public static void ResetPeak()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception)
        {
            // Not Linux, or not permitted: peaks then include earlier settings; the report says which machine.
        }
    }

    /// <summary>The checkout's short commit hash (what each report row records), or "unknown" without git.</summary>
    public static string Commit()
    {
        try
        {
            var info = new ProcessStartInfo("git", "rev-parse --short HEAD") { RedirectStandardOutput = true, UseShellExecute = false };
            using var process = Process.Start(info)!;
            string text = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return text;
        }
        catch (Exception)
        {
            return "unknown";
        }
    }

    public static double PeakMiB() => ReadStatusKiB("VmHWM") / 1024.0;

    public static double ResidentMiB() => ReadStatusKiB("VmRSS") / 1024.0;

    private static long ReadStatusKiB(string key)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0]);
        return 0;
    }

    public static (T Result, TimeSpan Elapsed) Time<T>(Func<T> work)
    {
        var watch = Stopwatch.StartNew();
        T result = work();
        return (result, watch.Elapsed);
    }
}
