using System.Runtime.InteropServices;

namespace Microsoft.ML.AuxRnn.Tests;

/// <summary>The process's resident memory as Linux reports it, for the memory tests.</summary>
internal static class ProcessMemory
{
    /// <summary>glibc: returns free heap pages to the system (so a freed block it keeps is not counted as held).</summary>
    [DllImport("libc", EntryPoint = "malloc_trim")]
    public static extern int MallocTrim(nuint pad);

    /// <summary>A field of /proc/self/status in kB (VmRSS: resident now; VmHWM: peak since the last reset).</summary>
    public static long StatusKb(string field)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }
}
