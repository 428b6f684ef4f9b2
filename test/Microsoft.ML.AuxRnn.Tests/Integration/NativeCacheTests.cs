using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// The patched copy of TorchSharp's native library (needed where libstdc++ predates GCC 13) cannot be hijacked: its
/// cache folder is private to the user, a cached copy is loaded only when it is the patch of the original about to be
/// used (anything else is rebuilt, not loaded), a folder that is a link is not used, the location can be chosen with
/// AUXRNN_NATIVE_CACHE, and a read-only home falls back to a private temporary folder. Each case runs
/// test/ConsumerProject's <c>native</c> mode as a fresh child process, since a process loads the library once.
/// </summary>
public sealed class NativeCacheTests : IDisposable
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private readonly string _folder = Directory.CreateTempSubdirectory("auxrnn-native-test-").FullName;
    private readonly ITestOutputHelper _output;

    public NativeCacheTests(ITestOutputHelper output) => _output = output;

    public void Dispose()
    {
        foreach (string dir in Directory.EnumerateDirectories(_folder, "*", SearchOption.AllDirectories))
            File.SetUnixFileMode(dir, Private);
        Directory.Delete(_folder, recursive: true);
    }

    /// <summary>Runs the consumer's native mode; returns the loader's status (null where no patch is needed), after checking that it computed.</summary>
    private string? RunNative(Dictionary<string, string?> environment)
    {
        var (exitCode, output) = ConsumerProgram.RunWith(environment, "native");
        _output.WriteLine(output);
        exitCode.Should().Be(0, output);
        output.Should().Contain("sum=3", "TorchSharp's native library loaded and computed");
        string status = Regex.Match(output, "^status=(.*)$", RegexOptions.Multiline).Groups[1].Value.Trim();
        return status.StartsWith("not needed", StringComparison.Ordinal) ? null : status;
    }

    private Dictionary<string, string?> Environment(string? cache, string? xdg = null) => new()
    {
        ["AUXRNN_NATIVE_CACHE"] = cache,
        ["XDG_CACHE_HOME"] = xdg ?? Path.Combine(_folder, "xdg"),
    };

    private static string CachedCopy(string root) =>
        Directory.GetFiles(root, "libLibTorchSharp.so", SearchOption.AllDirectories).Should().ContainSingle().Which;

    [Fact]
    public void ACachedCopyIsVerifiedAndATamperedOneIsRebuiltNotLoaded()
    {
        string cache = Path.Combine(_folder, "chosen");
        string? status = RunNative(Environment(cache));
        if (status is null)
            return; // this system's libstdc++ needs no patch: nothing is cached
        status.Should().StartWith(cache + "/").And.EndWith("(written)");
        string copy = CachedCopy(cache);
        File.GetUnixFileMode(cache).Should().Be(Private, "the cache folder is private to the user");
        File.GetUnixFileMode(Path.GetDirectoryName(copy)!).Should().Be(Private);
        byte[] good = File.ReadAllBytes(copy);

        RunNative(Environment(cache)).Should().EndWith("(verified)");

        // The unpatched original in place of the copy: loading it would fail here (GLIBCXX_3.4.32 is missing).
        string original = Directory.GetFiles(Path.GetDirectoryName(ConsumerProgram.DllPath)!, "libLibTorchSharp.so", SearchOption.AllDirectories).First();
        File.Copy(original, copy, overwrite: true);
        RunNative(Environment(cache)).Should().Contain("rebuilt");
        File.ReadAllBytes(copy).Should().Equal(good, "the tampered copy was replaced by the patch of the original");

        // One byte changed at random.
        var bytes = File.ReadAllBytes(copy);
        bytes[Random.Shared.Next(bytes.Length)] ^= (byte)Random.Shared.Next(1, 256);
        File.WriteAllBytes(copy, bytes);
        RunNative(Environment(cache)).Should().Contain("rebuilt");
        File.ReadAllBytes(copy).Should().Equal(good);

        // A folder others could write to is closed again.
        File.SetUnixFileMode(cache, Private | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
        RunNative(Environment(cache)).Should().EndWith("(verified)");
        File.GetUnixFileMode(cache).Should().Be(Private);
    }

    [Fact]
    public void ACacheFolderThatIsALinkIsNotUsed()
    {
        // Someone who could create the folder first points it at a folder of their choosing.
        string elsewhere = Directory.CreateDirectory(Path.Combine(_folder, "elsewhere")).FullName;
        string cache = Path.Combine(_folder, "link");
        Directory.CreateSymbolicLink(cache, elsewhere);
        string xdg = Path.Combine(_folder, "xdg");

        string? status = RunNative(Environment(cache, xdg));
        if (status is null)
            return;
        status.Should().StartWith(Path.Combine(xdg, "Microsoft.ML.AuxRnn") + "/", "the link is skipped for the next location");
        Directory.EnumerateFileSystemEntries(elsewhere).Should().BeEmpty("nothing is written through the link");
    }

    [Fact]
    public void AReadOnlyHomeFallsBackToAPrivateTemporaryFolder()
    {
        // A home below a plain file cannot be created or written, even by root.
        string file = Path.Combine(_folder, "not-a-folder");
        File.WriteAllText(file, "");
        string temp = Directory.CreateDirectory(Path.Combine(_folder, "tmp")).FullName;
        var environment = new Dictionary<string, string?>
        {
            ["AUXRNN_NATIVE_CACHE"] = null,
            ["XDG_CACHE_HOME"] = null,
            ["HOME"] = Path.Combine(file, "home"),
            ["TMPDIR"] = temp,
        };

        string? status = RunNative(environment);
        if (status is null)
            return;
        status.Should().StartWith(Path.Combine(temp, "auxrnn-native-")).And.EndWith("(written)");
        string root = Directory.GetDirectories(temp, "auxrnn-native-*").Should().ContainSingle().Which;
        File.GetUnixFileMode(root).Should().Be(Private);
        CachedCopy(root).Should().NotBeNull();
    }
}
