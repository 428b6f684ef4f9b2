using System.Buffers.Binary;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.AuxRnn.Runtime;

/// <summary>
/// Makes TorchSharp 0.107.0 load on Linux systems whose libstdc++ is older than GCC 13 (Debian 12, Ubuntu 22.04).
/// </summary>
/// <remarks>
/// <c>libLibTorchSharp.so</c> declares a need for <c>GLIBCXX_3.4.32</c>, but only for
/// <c>std::ios_base_library_init</c>, which no relocation uses. When the system's libstdc++ lacks that version,
/// this loader writes a copy of the library in which that single version requirement is marked weak
/// (<c>VER_FLG_WEAK</c> in its <c>.gnu.version_r</c> entry) into a per-user cache folder (private to the user, and
/// its copy used only after its SHA-256 is checked: see <see cref="CacheVariable"/>), loads libtorch's own
/// libraries by full path and then the patched copy. TorchSharp's later lookups of <c>LibTorchSharp</c> resolve
/// to the already loaded copy (same soname). It runs from a module initializer, so every consumer of this
/// library gets it before TorchSharp first loads; on other systems it does nothing.
/// </remarks>
public static class TorchNativeLoader
{
    private const string MissingVersion = "GLIBCXX_3.4.32";
    private const string LibraryFile = "libLibTorchSharp.so";
    private static readonly object Gate = new();
    private static bool _done;
    private static string? _failure;

    /// <summary>What the loader did: "not needed", the patched copy's path (and whether it was verified, written or rebuilt), or why it could not help.</summary>
    public static string Status { get; private set; } = "not run";

#pragma warning disable CA2255 // deliberate: it must run before TorchSharp loads, in every consumer
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void InitializeModule()
    {
        try
        {
            EnsureInitialized();
        }
        catch (Exception e)
        {
            // Never fail the module's load: the explicit call before training reports the problem.
            _failure = e.Message;
        }
    }

    /// <summary>Prepares TorchSharp's native library. Safe to call many times; does nothing off Linux.</summary>
    public static void EnsureInitialized()
    {
        lock (Gate)
        {
            if (_done)
                return;
            _done = true;
            if (!OperatingSystem.IsLinux())
            {
                Status = "not needed (not Linux)";
                return;
            }

            if (SystemLibStdCxxHas(MissingVersion))
            {
                Status = "not needed (system libstdc++ has " + MissingVersion + ")";
                return;
            }

            string? original = FindNativeLibrary(LibraryFile);
            if (original == null)
            {
                Status = "TorchSharp's native library was not found next to the application; nothing patched";
                return;
            }

            string directory = Path.GetDirectoryName(original)!;
            string patched = GetOrCreatePatchedCopy(original);

            // The patched copy lives outside libtorch's folder, so its dependencies must already be loaded.
            foreach (string dependency in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so", "libc10_cuda.so", "libtorch_cuda.so" })
            {
                string path = Path.Combine(directory, dependency);
                if (File.Exists(path))
                    NativeLibrary.Load(path);
            }
            NativeLibrary.Load(patched);
            Status = $"{patched} ({CacheNote})";
        }
    }

    /// <summary>Throws a clear error when the native library could not be prepared.</summary>
    internal static void ThrowIfFailed()
    {
        EnsureInitialized();
        if (_failure != null)
            throw new InvalidOperationException("TorchSharp's native library could not be prepared: " + _failure);
        Training.CpuTuning.EnableLibTorchHugePages();
    }

    private static bool SystemLibStdCxxHas(string version)
    {
        string? path = null;
        try
        {
            path = File.ReadLines("/proc/self/maps")
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(p => p.Length >= 6 && Path.GetFileName(p[5]).StartsWith("libstdc++.so", StringComparison.Ordinal))
                .Select(p => p[5]).FirstOrDefault();
        }
        catch (IOException)
        {
        }

        path ??= new[]
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib64/libstdc++.so.6",
        }.FirstOrDefault(File.Exists);
        if (path == null)
            return true; // Unknown system: leave TorchSharp to its own loader.

        byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
        return File.ReadAllBytes(path).AsSpan().IndexOf(needle) >= 0;
    }

    private static string? FindNativeLibrary(string file)
    {
        var directories = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
            directories.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        string rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        foreach (string? root in new[] { AppContext.BaseDirectory, TorchSharpAssemblyDirectory() })
        {
            if (string.IsNullOrEmpty(root))
                continue;
            directories.Add(root);
            directories.Add(Path.Combine(root, "runtimes", rid, "native"));
        }

        return directories.Select(d => Path.Combine(d, file)).FirstOrDefault(File.Exists);
    }

    private static string? TorchSharpAssemblyDirectory()
    {
        try
        {
            string? location = Assembly.Load("TorchSharp").Location;
            return string.IsNullOrEmpty(location) ? null : Path.GetDirectoryName(location);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Environment variable naming the folder for the patched copy (created private to the user if missing).</summary>
    public const string CacheVariable = "AUXRNN_NATIVE_CACHE";

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// The patched copy of <paramref name="original"/>, from the first usable cache folder: <c>$AUXRNN_NATIVE_CACHE</c>,
    /// else <c>$XDG_CACHE_HOME</c> (or <c>~/.cache</c>) <c>/Microsoft.ML.AuxRnn</c>, else a private folder in the temporary
    /// folder (a read-only home). A folder is usable when it is a real directory owned by this user and closed to
    /// everyone else (0700; a looser one of ours is tightened). A cached copy is used only if its SHA-256 equals that
    /// of the patch of the original about to be used; otherwise it is rebuilt.
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static string GetOrCreatePatchedCopy(string original)
    {
        byte[] bytes = File.ReadAllBytes(original);
        string hash = Convert.ToHexString(SHA256.HashData(bytes))[..16].ToLowerInvariant();
        if (!MarkVersionNeedWeak(bytes, MissingVersion))
            throw new InvalidOperationException(
                $"'{original}' needs {MissingVersion}, which this system's libstdc++ lacks, and no such version requirement was found to relax.");
        byte[] expected = SHA256.HashData(bytes);

        var problems = new List<string>();
        foreach (string root in CacheRoots())
        {
            try
            {
                if (PrepareFolder(root) is { } rootProblem)
                {
                    problems.Add(rootProblem);
                    continue;
                }
                string folder = Path.Combine(root, "torchsharp-" + hash);
                if (PrepareFolder(folder) is { } folderProblem)
                {
                    problems.Add(folderProblem);
                    continue;
                }
                string target = Path.Combine(folder, LibraryFile);
                if (File.Exists(target))
                {
                    if (SHA256.HashData(File.ReadAllBytes(target)).AsSpan().SequenceEqual(expected))
                    {
                        CacheNote = "verified";
                        return target;
                    }
                    CacheNote = "rebuilt: the cached copy did not match the patch of the original";
                }
                else
                {
                    CacheNote = "written";
                }

                string temp = Path.Combine(folder, $"{LibraryFile}.{Environment.ProcessId}.tmp");
                using (var stream = new FileStream(temp, new FileStreamOptions
                {
                    Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None,
                    UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
                }))
                {
                    stream.Write(bytes);
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, target, overwrite: true); // atomic: concurrent processes see a whole file or none
                return target;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add($"'{root}': {e.Message}");
            }
        }
        throw new InvalidOperationException("No private folder could hold the patched copy of " + LibraryFile + ": " + string.Join("; ", problems));
    }

    /// <summary>How the cached copy was obtained: verified, written or rebuilt.</summary>
    private static string CacheNote { get; set; } = "";

    private static IEnumerable<string> CacheRoots()
    {
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } chosen)
            yield return Path.GetFullPath(chosen);
        string? cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) is { Length: > 0 } home ? Path.Combine(home, ".cache") : null;
        if (cacheHome != null)
            yield return Path.Combine(cacheHome, "Microsoft.ML.AuxRnn");
        yield return Path.Combine(Path.GetTempPath(), $"auxrnn-native-{GetEffectiveUserId()}");
    }

    /// <summary>Creates <paramref name="folder"/> 0700 if missing; returns why it is not private to this user, or null when it is (tightening a looser one of ours).</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static string? PrepareFolder(string folder)
    {
        Directory.CreateDirectory(folder, Private);
        if (FileOwner(folder) is not { } owner)
            return $"'{folder}': its owner cannot be read";
        if (owner.IsLink || !owner.IsDirectory)
            return $"'{folder}' is not a directory (a link?)";
        if (owner.Uid != GetEffectiveUserId())
            return $"'{folder}' belongs to user {owner.Uid}, not to this user ({GetEffectiveUserId()})";
        if ((File.GetUnixFileMode(folder) & ~Private) != 0)
            File.SetUnixFileMode(folder, Private);
        return null;
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEffectiveUserId();

    [DllImport("libc", EntryPoint = "lstat", SetLastError = true)]
    private static extern unsafe int LStat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte* buffer);

    /// <summary>Owner and kind of <paramref name="path"/> itself (not of a link's target), from lstat; null where unreadable.</summary>
    internal static unsafe (uint Uid, bool IsDirectory, bool IsLink)? FileOwner(string path)
    {
        const uint TypeMask = 0xF000, Directory = 0x4000, Link = 0xA000;
        // struct stat: x86-64 has st_mode at 24 and st_uid at 28; aarch64 (the generic layout) st_mode at 16, st_uid at 24.
        (int modeAt, int uidAt) = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (24, 28),
            Architecture.Arm64 => (16, 24),
            _ => (-1, -1),
        };
        if (modeAt < 0)
            return null;
        byte* buffer = stackalloc byte[256];
        try
        {
            if (LStat(path, buffer) != 0)
                return null;
        }
        catch (EntryPointNotFoundException)
        {
            return null; // glibc before 2.33 exports __lxstat only
        }
        uint mode = *(uint*)(buffer + modeAt) & TypeMask;
        return (*(uint*)(buffer + uidAt), mode == Directory, mode == Link);
    }

    /// <summary>
    /// Sets VER_FLG_WEAK on the <c>.gnu.version_r</c> auxiliary entry named <paramref name="version"/> of a
    /// 64-bit little-endian ELF image. Returns false when the image has no such entry.
    /// </summary>
    internal static bool MarkVersionNeedWeak(byte[] elf, string version)
    {
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlgWeak = 0x2;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a 64-bit little-endian ELF file");

        Span<byte> span = elf;
        long shoff = BinaryPrimitives.ReadInt64LittleEndian(span[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);
        bool found = false;
        for (int i = 0; i < shnum; i++)
        {
            Span<byte> sh = span.Slice(checked((int)(shoff + (long)i * shentsize)), 64);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed)
                continue;
            long offset = BinaryPrimitives.ReadInt64LittleEndian(sh[0x18..]);
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);
            Span<byte> strSh = span.Slice(checked((int)(shoff + (long)link * shentsize)), 64);
            long strtab = BinaryPrimitives.ReadInt64LittleEndian(strSh[0x18..]);

            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(int)(need + 2)..]);
                long aux = need + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(need + 8)..]);
                for (int a = 0; a < auxCount; a++)
                {
                    long name = strtab + BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(aux + 8)..]);
                    int end = span[(int)name..].IndexOf((byte)0);
                    if (Encoding.ASCII.GetString(span.Slice((int)name, end)) == version)
                    {
                        Span<byte> flags = span[(int)(aux + 4)..];
                        BinaryPrimitives.WriteUInt16LittleEndian(flags, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(flags) | VerFlgWeak));
                        found = true;
                    }
                    aux += BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(aux + 12)..]);
                }
                need += BinaryPrimitives.ReadUInt32LittleEndian(span[(int)(need + 12)..]);
            }
        }
        return found;
    }
}
