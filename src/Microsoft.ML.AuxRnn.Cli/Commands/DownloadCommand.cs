using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

/// <summary>
/// <c>auxrnn download mnist|cifar10|dbpedia</c>: fetches a data set from its public home, checks every file's MD5
/// against the published checksum, unpacks it into the cache (<c>$AUXRNN_CACHE</c>, else
/// <c>$XDG_CACHE_HOME/auxrnn</c>, else <c>~/.cache/auxrnn</c>) and prints the folder to pass as <c>--data</c>.
/// A data set already in the cache is not fetched again. <c>$AUXRNN_DOWNLOAD_MIRROR</c> replaces the base address
/// (a local mirror).
/// </summary>
internal static class DownloadCommand
{
    internal sealed record RemoteFile(string Url, string FileName, string Md5);

    internal sealed record Dataset(string Name, string Folder, RemoteFile[] Files, string[] Expected, string Instead);

    internal static readonly Dataset Mnist = new("MNIST", "mnist",
        new[]
        {
            new RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            new RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            new RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            new RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        },
        new[] { "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" },
        "the four MNIST idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder: --data FOLDER");

    internal static readonly Dataset Cifar10 = new("CIFAR-10", "cifar10",
        new[] { new RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530") },
        new[] { "data_batch_1.bin", "test_batch.bin", "batches.meta.txt" },
        "the CIFAR-10 binary version (cifar-10-binary.tar.gz, unpacked: data_batch_1..5.bin, test_batch.bin, batches.meta.txt): --data FOLDER --format cifar10");

    internal static readonly Dataset DbPedia = new("DBpedia", "dbpedia",
        new[] { new RemoteFile("https://drive.google.com/uc?export=download&id=0Bz8a_Dbh9QhbQ2Vic1kxMmZZQ1k&confirm=t", "dbpedia_csv.tar.gz", "dca7b1ae12b1091090db52aa7ec5ca64") },
        new[] { "train.csv", "test.csv", "classes.txt" },
        "Zhang et al.'s dbpedia_csv folder (train.csv, test.csv, classes.txt): --data FOLDER --format csv");

    public static object Run(CommandLine line, IAnsiConsole console)
    {
        string which = line.Positional.FirstOrDefault() ?? line.String("format")
            ?? throw new UsageException("Name the data set: auxrnn download mnist|cifar10|dbpedia.");
        string cache = CacheFolder(line.String("cache"));
        line.Flag("json");
        line.ThrowOnUnused();
        string folder = Fetch(DatasetFor(which), cache, console);
        console.MarkupLine($"Ready: [bold]{Markup.Escape(folder)}[/]  (train with: auxrnn train --data {Markup.Escape(folder)})");
        return new { command = "download", dataset = which, folder };
    }

    public static Dataset DatasetFor(string name) => name.ToLowerInvariant() switch
    {
        "mnist" => Mnist,
        "cifar10" or "cifar-10" or "cifar" => Cifar10,
        "dbpedia" or "csv" => DbPedia,
        _ => throw new UsageException($"auxrnn can download mnist, cifar10 or dbpedia, not '{name}'."),
    };

    public static string CacheFolder(string? option)
    {
        if (!string.IsNullOrEmpty(option))
            return option;
        if (Environment.GetEnvironmentVariable("AUXRNN_CACHE") is { Length: > 0 } env)
            return env;
        string root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "auxrnn");
    }

    /// <summary>Downloads (unless cached), verifies and unpacks <paramref name="dataset"/>; returns its folder.</summary>
    public static string Fetch(Dataset dataset, string cache, IAnsiConsole console, HttpMessageHandler? handler = null)
    {
        string folder = Path.Combine(cache, dataset.Folder);
        if (dataset.Expected.All(f => File.Exists(Path.Combine(folder, f))))
        {
            console.MarkupLine($"{dataset.Name} is already in the cache: {Markup.Escape(folder)}");
            return folder;
        }

        Directory.CreateDirectory(folder);
        using var http = handler == null ? new HttpClient() : new HttpClient(handler);
        http.Timeout = TimeSpan.FromMinutes(30);
        http.DefaultRequestHeaders.UserAgent.ParseAdd("auxrnn/0.1");
        foreach (var file in dataset.Files)
        {
            string url = Mirror(file.Url);
            string target = Path.Combine(folder, file.FileName);
            if (!File.Exists(target) || Md5(target) != file.Md5)
                Download(http, dataset, url, target, console);
            string md5 = Md5(target);
            if (md5 != file.Md5)
            {
                File.Delete(target);
                throw new InvalidDataException(
                    $"{file.FileName} from {url} failed its checksum (MD5 {md5}, expected {file.Md5}): the download is damaged or the file changed. " +
                    $"Nothing was kept; download {dataset.Instead}.");
            }
            console.MarkupLine($"  {Markup.Escape(file.FileName)}: checksum verified");
            if (file.FileName.EndsWith(".tar.gz", StringComparison.Ordinal))
                Unpack(target, folder, dataset.Expected);
        }
        return folder;
    }

    private static string Mirror(string url)
    {
        string? mirror = Environment.GetEnvironmentVariable("AUXRNN_DOWNLOAD_MIRROR");
        if (string.IsNullOrEmpty(mirror))
            return url;
        string name = new Uri(url).AbsolutePath.Split('/').Last();
        if (url.Contains("drive.google.com", StringComparison.Ordinal))
            name = "dbpedia_csv.tar.gz";
        return mirror.TrimEnd('/') + "/" + name;
    }

    private static void Download(HttpClient http, Dataset dataset, string url, string target, IAnsiConsole console)
    {
        string partial = target + ".part";
        try
        {
            console.MarkupLine($"Downloading {Markup.Escape(url)}");
            using var response = http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
            response.EnsureSuccessStatusCode();
            using (var input = response.Content.ReadAsStream())
            using (var output = File.Create(partial))
                input.CopyTo(output);
            File.Move(partial, target, overwrite: true);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            File.Delete(partial);
            throw new UsageException(
                $"Could not download {dataset.Name} from {url} ({e.Message}). This machine may be offline. " +
                $"Instead, get {dataset.Instead}; or run 'auxrnn' with no arguments for the built-in demonstration, which needs no download.");
        }
    }

    private static string Md5(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(MD5.HashData(stream)).ToLowerInvariant();
    }

    /// <summary>Extracts the regular files of a .tar.gz flat into <paramref name="folder"/> (names only: no paths from the archive are trusted).</summary>
    private static void Unpack(string archive, string folder, string[] expected)
    {
        using var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress);
        using var tar = new TarReader(gzip);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream == null)
                continue;
            string name = Path.GetFileName(entry.Name);
            if (name.Length == 0 || name.StartsWith('.'))
                continue;
            using var output = File.Create(Path.Combine(folder, name));
            entry.DataStream.CopyTo(output);
        }
        var missing = expected.Where(f => !File.Exists(Path.Combine(folder, f))).ToArray();
        if (missing.Length > 0)
            throw new InvalidDataException($"'{archive}' did not hold {string.Join(", ", missing)}.");
    }
}
