using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>
/// CPU settings that make LSTM training several times faster and that TorchSharp does not expose: flushing
/// denormal floats to zero, and keeping freed memory for reuse while training. <see cref="Runtime.ProcessState"/>
/// decides when they apply (<see cref="AuxLstmClassifierOptions.CpuTuning"/>) and puts the process back as it was.
/// </summary>
/// <remarks>
/// <para>Denormals: truncated backpropagation makes gradients decay through hundreds of steps into denormal floats,
/// which x86 CPUs compute up to 100× slower. Measured here, the backward pass of a 300-step LSTM window (batch 128,
/// 128 cells) took 4.9 s with denormals and 0.47 s without. <see cref="FlushDenormals"/> is PyTorch's
/// <c>torch.set_flush_denormal</c>: it sets the mode of the calling thread and of the intra-op threads started
/// afterwards; values below 1.2e-38 become 0.</para>
/// <para>Huge pages: an r-LSTM step allocates and frees hundreds of MiB of activations; with 4 KiB pages the kernel
/// spends most of the step faulting in and zero-filling pages. libtorch's CPU allocator asks for 2 MiB pages
/// (madvise) for its blocks of 2 MiB and more when <c>THP_MEM_ALLOC_ENABLE=1</c>, an environment variable it reads
/// once, at its first allocation. <see cref="EnableLibTorchHugePages"/> sets it for that one allocation and removes
/// it again (measured: r-LSTM, 1,280 pixel-MNIST rows, one epoch, 2 threads: 71 s without, 27.5 s with).</para>
/// <para>Reuse: glibc serves blocks above 32 MiB with fresh mmap calls and returns them when freed, so every step
/// faults in and zero-fills its activations again. <see cref="RetainFreedMemory"/> makes glibc serve them from
/// the heap and keep freed memory while training (the step repeats the same sizes, so it is reused), then returns
/// it: r-LSTM's MNIST step went from 3.0 s to 2.3 s. glibc cannot report its settings, so they cannot be restored
/// to what they were: it only applies with <see cref="CpuTuningMode.RetainFreedMemory"/>, and is skipped when
/// the process tunes malloc through MALLOC_* environment variables.</para>
/// </remarks>
internal static unsafe class CpuTuning
{
    private static readonly object Gate = new();
    private static bool _resolved;
    private static delegate* unmanaged<IntPtr> _globalContext;
    private static delegate* unmanaged<IntPtr, byte, byte> _setFlushDenormal;

    private const int MTrimThreshold = -1;
    private const int MMmapMax = -4;
    private const int MMmapThreshold = -3;

    private const string HugePagesVariable = "THP_MEM_ALLOC_ENABLE";
    private static bool _hugePagesTried;

    /// <summary>What <see cref="EnableLibTorchHugePages"/> did (diagnostics and tests).</summary>
    internal static string HugePages { get; private set; } = "not tried";

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "unsetenv")]
    private static extern int UnsetEnv(string name);

    /// <summary>
    /// Once per process, before libtorch's first allocation: has libtorch's CPU allocator ask for 2 MiB pages for its
    /// large blocks (tensors only; the rest of the process keeps its own allocator). libtorch reads
    /// <c>THP_MEM_ALLOC_ENABLE</c> once, at its first allocation, so the variable is set for that allocation and then
    /// removed: the environment is left as found. Skipped when the process sets the variable itself (its value holds),
    /// when <c>AUXRNN_CPU_TUNING=off</c>, off Linux, when the kernel's transparent huge pages are off, and when libtorch
    /// has already allocated (then it has already read the variable and this changes nothing).
    /// </summary>
    internal static void EnableLibTorchHugePages()
    {
        lock (Gate)
        {
            if (_hugePagesTried)
                return;
            _hugePagesTried = true;
            try
            {
                HugePages = TryEnableHugePages();
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or IOException or UnauthorizedAccessException)
            {
                HugePages = "not set: " + e.Message;
            }
        }
    }

    private static string TryEnableHugePages()
    {
        if (!OperatingSystem.IsLinux())
            return "not set (not Linux)";
        if (Environment.GetEnvironmentVariable(HugePagesVariable) is { } own)
            return $"left to the process ({HugePagesVariable}={own})";
        if (Runtime.ProcessState.Effective(CpuTuningMode.Default) == CpuTuningMode.Off)
            return $"not set ({Runtime.ProcessState.TuningVariable}=off)";
        const string Mode = "/sys/kernel/mm/transparent_hugepage/enabled";
        if (File.Exists(Mode) && File.ReadAllText(Mode).Contains("[never]", StringComparison.Ordinal))
            return "not set (the kernel's transparent huge pages are off)";
        if (SetEnv(HugePagesVariable, "1", 0) != 0)
            return "not set (setenv failed)";
        try
        {
            using var first = TorchSharp.torch.empty(1); // libtorch's first allocation reads the variable, once
        }
        finally
        {
            UnsetEnv(HugePagesVariable);
        }
        return "libtorch asked for 2 MiB pages for its large blocks (if this was its first allocation)";
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int MallOpt(int parameter, int value);

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    /// <summary>
    /// Until disposed, glibc keeps freed memory and serves large blocks from the heap instead of mmap; on disposal its
    /// defaults return and freed memory goes back to the system. Does nothing off glibc or when MALLOC_* is set.
    /// </summary>
    public static IDisposable RetainFreedMemory()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariables().Keys.Cast<string>().Any(k => k.StartsWith("MALLOC_", StringComparison.Ordinal)))
            return NoOp.Instance;
        try
        {
            if (MallOpt(MMmapMax, 0) == 0)
                return NoOp.Instance;
            MallOpt(MTrimThreshold, int.MaxValue);
            return new Retention();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return NoOp.Instance;
        }
    }

    private sealed class Retention : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            // glibc's own settings cannot be restored: setting any threshold turns its adaptive mmap threshold off for
            // good, and its fixed defaults (mmap above 128 KiB, trim above 128 KiB) made every later training step
            // fault in its tensors afresh (a 4-epoch p-LSTM fit after one RetainFreedMemory fit: 3.5 s → 13.1 s). So the
            // values the adaptive threshold reaches in a process that allocates large blocks are set instead: mmap
            // above 32 MiB (glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), trim above twice that, as glibc does.
            MallOpt(MMmapMax, 65_536);
            MallOpt(MMmapThreshold, 32 << 20);
            MallOpt(MTrimThreshold, 64 << 20);
            MallocTrim(0);
        }
    }

    private sealed class NoOp : IDisposable
    {
        public static readonly NoOp Instance = new();

        public void Dispose()
        {
        }
    }

    /// <summary>
    /// Sets flush-denormals-to-zero on the calling thread; returns whether the CPU and libtorch support it. Turning it
    /// off restores the thread's floating-point environment as it was when it was turned on: libtorch 2.10's
    /// setFlushDenormal(false) leaves the FTZ and DAZ bits set, and the caller's own code (ML.NET's, the user's)
    /// would otherwise go on treating tiny doubles as zeros after Fit returns.
    /// </summary>
    public static bool FlushDenormals(bool on)
    {
        if (!Resolve())
            return false;
        if (on && _savedEnvironment is null && TryGetEnvironment() is { } saved)
            _savedEnvironment = saved;
        bool supported = _setFlushDenormal(_globalContext(), on ? (byte)1 : (byte)0) != 0;
        if (!on && _savedEnvironment is { } environment)
        {
            _savedEnvironment = null;
            SetEnvironment(environment);
        }
        return supported;
    }

    /// <summary>The calling thread's floating-point environment (glibc's fenv_t, x87 and SSE control words) before flushing was turned on.</summary>
    [ThreadStatic]
    private static byte[]? _savedEnvironment;

    [DllImport("libm.so.6", EntryPoint = "fegetenv")]
    private static extern int FeGetEnv(byte* environment);

    [DllImport("libm.so.6", EntryPoint = "fesetenv")]
    private static extern int FeSetEnv(byte* environment);

    private static byte[]? TryGetEnvironment()
    {
        var environment = new byte[64]; // fenv_t is 32 bytes on x86-64 glibc
        try
        {
            fixed (byte* p = environment)
                return FeGetEnv(p) == 0 ? environment : null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// The calling thread's floating-point modes: the x87 control word and MXCSR without its sticky exception flags
    /// (FTZ is bit 15, DAZ bit 6, rounding bits 13-14); "" where unreadable.
    /// </summary>
    public static string FloatingPointEnvironment()
    {
        if (TryGetEnvironment() is not { } e)
            return "";
        ushort control = BitConverter.ToUInt16(e, 0);
        uint mxcsr = BitConverter.ToUInt32(e, 28) & ~0x3Fu;
        return $"x87 control {control:X4}, MXCSR {mxcsr:X8}";
    }

    private static void SetEnvironment(byte[] environment)
    {
        fixed (byte* p = environment)
            FeSetEnv(p);
    }

    private static bool Resolve()
    {
        lock (Gate)
        {
            if (!_resolved)
            {
                _resolved = true;
                if (OperatingSystem.IsLinux()
                    && NativeLibrary.TryLoad("libtorch_cpu.so", typeof(CpuTuning).Assembly, null, out var lib)
                    && NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var context)
                    && NativeLibrary.TryGetExport(lib, "_ZN2at7Context16setFlushDenormalEb", out var set))
                {
                    _globalContext = (delegate* unmanaged<IntPtr>)context;
                    _setFlushDenormal = (delegate* unmanaged<IntPtr, byte, byte>)set;
                }
            }
            return _globalContext != null;
        }
    }
}
