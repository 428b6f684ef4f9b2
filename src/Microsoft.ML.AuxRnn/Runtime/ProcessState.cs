using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.ML.AuxRnn.Training;
using TorchSharp;

namespace Microsoft.ML.AuxRnn.Runtime;

/// <summary>
/// The host process's state that training touches, left as it was found: process-wide settings are saved by the first
/// of any concurrent <c>Fit</c> calls and restored by the last (reference-counted); the training thread's
/// floating-point environment is saved and restored by its own <c>Fit</c>; torch's global random generator is only
/// ever used under a lock, with its state saved and restored around the draws (<see cref="WithGlobalGenerator{T}"/>).
/// </summary>
/// <remarks>
/// Another process-wide setting (a libtorch flag, say) is added in one place: <see cref="Settings"/>, with how to
/// read it and how to write it back; <see cref="EnterFit"/> may then change it and the last <c>Fit</c> restores it.
/// </remarks>
internal static class ProcessState
{
    /// <summary>Set to <c>off</c> (or 0, none, false) to turn every CPU tuning off, whatever the options say.</summary>
    public const string TuningVariable = "AUXRNN_CPU_TUNING";

    /// <summary>A process-wide setting: how to read it and how to write back what was read.</summary>
    internal sealed record Setting(string Name, Func<object?> Read, Action<object?> Write);

    /// <summary>The settings saved before the first concurrent Fit changes anything, and restored after the last.</summary>
    internal static readonly IReadOnlyList<Setting> Settings = new[]
    {
        new Setting("torch intra-op threads", () => torch.get_num_threads(), value => torch.set_num_threads((int)value!)),
    };

    private static readonly object Gate = new();
    private static readonly object GeneratorGate = new();
    private static int _active;
    private static object?[]? _saved;
    private static IDisposable? _retention;

    /// <summary>Number of Fit calls inside <see cref="EnterFit"/> now (tests).</summary>
    internal static int Active
    {
        get
        {
            lock (Gate)
                return _active;
        }
    }

    /// <summary>What tuning applies: <paramref name="requested"/>, unless <see cref="TuningVariable"/> turns it off.</summary>
    public static CpuTuningMode Effective(CpuTuningMode requested) =>
        Environment.GetEnvironmentVariable(TuningVariable)?.Trim().ToLowerInvariant() is "off" or "0" or "none" or "false" ? CpuTuningMode.Off : requested;

    /// <summary>
    /// Applies what a Fit asks for until disposed, on the calling thread (Fit trains on the thread that calls it):
    /// <paramref name="threads"/> intra-op threads when given, and <paramref name="tuning"/>. Dispose on the same thread.
    /// </summary>
    public static IDisposable EnterFit(int? threads, CpuTuningMode tuning)
    {
        tuning = Effective(tuning);
        lock (Gate)
        {
            if (_active == 0)
                _saved = Settings.Select(s => s.Read()).ToArray();
            _active++;
        }

        var scope = new FitScope(threads is null ? null : torch.get_num_threads());
        try
        {
            if (threads is int n)
                torch.set_num_threads(n);
            if (tuning == CpuTuningMode.RetainFreedMemory)
            {
                lock (Gate)
                    _retention ??= CpuTuning.RetainFreedMemory();
            }
            if (tuning != CpuTuningMode.Off)
                scope.FlushedDenormals = CpuTuning.FlushDenormals(true);
        }
        catch
        {
            scope.Dispose();
            throw;
        }
        return scope;
    }

    private sealed class FitScope : IDisposable
    {
        private readonly int? _threadsBefore;
        private readonly int _thread = Environment.CurrentManagedThreadId;
        private bool _disposed;

        public FitScope(int? threadsBefore) => _threadsBefore = threadsBefore;

        public bool FlushedDenormals { get; set; }

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            if (FlushedDenormals && Environment.CurrentManagedThreadId == _thread)
                CpuTuning.FlushDenormals(false); // restores this thread's floating-point environment as it was
            lock (Gate)
            {
                if (--_active == 0)
                {
                    for (int i = Settings.Count - 1; i >= 0; i--)
                        Settings[i].Write(_saved![i]);
                    _saved = null;
                    _retention?.Dispose();
                    _retention = null;
                }
                else if (_threadsBefore is int threads)
                {
                    torch.set_num_threads(threads); // this thread's count; the process's is restored by the last Fit
                }
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="draw"/> (module construction: initialization draws from torch's global CPU generator)
    /// with the global generator seeded with <paramref name="seed"/> when given, under a process-wide lock, and
    /// puts the generator's state back afterwards: concurrent Fit calls cannot interleave their draws, and the
    /// caller's own random stream is not moved.
    /// </summary>
    public static T WithGlobalGenerator<T>(long? seed, Func<T> draw)
    {
        lock (GeneratorGate)
        {
            using var state = torch.random.get_rng_state();
            try
            {
                if (seed is long s)
                    torch.random.manual_seed(s);
                return draw();
            }
            finally
            {
                torch.random.set_rng_state(state);
            }
        }
    }

    /// <summary>
    /// What a test compares before and after: every saved setting, the calling thread's floating-point modes, the
    /// global generator's state, and whether this library has glibc's allocator tuned (glibc cannot report its
    /// settings; <see cref="LargeBlocksMapped"/> observes them on a fresh arena).
    /// </summary>
    internal sealed record Snapshot(string Settings, string FloatingPoint, string Generator, bool AllocatorTuned);

    internal static Snapshot Capture()
    {
        string settings = string.Join("; ", Settings.Select(s => $"{s.Name}={s.Read()}"));
        string generator;
        lock (GeneratorGate)
        {
            using var state = torch.random.get_rng_state();
            generator = Convert.ToHexString(SHA256.HashData(state.bytes));
        }
        bool tuned;
        lock (Gate)
            tuned = _retention != null;
        return new Snapshot(settings, CpuTuning.FloatingPointEnvironment(), generator, tuned);
    }

    /// <summary>
    /// Whether glibc serves a 32 MiB block with its own mmap (the chunk header's IS_MMAPPED bit), as by default (its
    /// adaptive mmap threshold never exceeds 32 MiB, and freeing such a block does not move it); while
    /// <see cref="CpuTuning.RetainFreedMemory"/> holds, it comes from the heap. Meaningful on an arena without a
    /// free chunk that large (memory kept while tuned stays in the free lists afterwards). True off glibc.
    /// </summary>
    internal static unsafe bool LargeBlocksMapped()
    {
        if (!OperatingSystem.IsLinux())
            return true;
        void* block = NativeMemory.Alloc(32 << 20);
        try
        {
            return (*((nuint*)block - 1) & 2) != 0;
        }
        finally
        {
            NativeMemory.Free(block);
        }
    }
}
