using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Benchmarks;
using Microsoft.ML.AuxRnn.Runtime;

// Usage: dotnet run --project test/Microsoft.ML.AuxRnn.Benchmarks -c Release -- [--only 1,4,5] [--minutes M] [--train-rows N] [--out docs]
// Every experiment runs through the public API with a time budget per run (--minutes), so the same harness fits a
// 2-core CPU in minutes and scales to full-length runs on a GPU (--minutes 60 --train-rows 60000).
TorchNativeLoader.EnsureInitialized();
var settings = BenchSettings.Parse(args);
TorchSharp.torch.set_num_threads(settings.Threads);
if (Array.IndexOf(args, "--ablation") is int ablation and >= 0)
{
    // --ablation mnist|pmnist|dbpedia --variant NAME [--epochs E] [--train-rows N] [--test-rows M] [--checkpoint DIR] [--seed S]
    string Arg(string name, string fallback) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    Ablation.Run(args[ablation + 1], Arg("--variant", "r-lstm"), int.Parse(Arg("--epochs", "3")), settings.TrainRows, settings.TestRows,
        settings.Data, settings.Output, settings.Threads, Arg("--checkpoint", null!), int.Parse(Arg("--seed", "1"), CultureInfo.InvariantCulture));
    return;
}

if (Array.IndexOf(args, "--streaming") >= 0)
{
    // --streaming [--rows 10000,1000000] [--steps 1000] [--batches 200] [--batch-size 32] [--buffer-mb 40]: peak memory of streamed training
    Streaming.Run(args, settings.Threads);
    return;
}

if (Array.IndexOf(args, "--precision") is int precisionArg and >= 0)
{
    // --precision DATA_ROOT [--batches B] [--threads T] [--setting r-lstm:bfloat16] [--decoder-groups G]: issue #10 step times and memory
    string Arg(string name, string fallback) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    string? groups = Array.IndexOf(args, "--decoder-groups") >= 0 ? Arg("--decoder-groups", "4") : null;
    PrecisionBench.Run(args[precisionArg + 1], int.Parse(Arg("--batches", "6")), settings.Threads,
        Array.IndexOf(args, "--setting") >= 0 ? Arg("--setting", "") : null, groups is null ? null : int.Parse(groups),
        decoderOnly: Array.IndexOf(args, "--bfloat16-decoder-only") >= 0);
    return;
}

if (Array.IndexOf(args, "--vocabulary") is int vocabulary and >= 0)
{
    // --vocabulary DATA_ROOT [--train-rows N] [--epochs E] [--batch B] [--threads T]: issue #10's measurement
    string Arg(string name, string fallback) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    VocabularyBench.Run(args[vocabulary + 1], settings.TrainRows, int.Parse(Arg("--epochs", "1")), int.Parse(Arg("--batch", "32")), settings.Threads);
    return;
}

string commit = Measure.Commit();
string machine = $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture}, torch threads {settings.Threads}";
var report = new Report(settings.Output,
    $"# Results\n\nProduced by `test/Microsoft.ML.AuxRnn.Benchmarks` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, commit `{commit}`, " +
    $"machine: {machine}. Budget: {settings.Minutes} min of training per run, {settings.TrainRows} training rows, {settings.TestRows} test rows. " +
    "Nothing else ran on the machine while it was measured. Paper figures are from its Table 2 (`../shared/docs/method.md`).");

var experiments = new Experiments(settings, report);
foreach (int id in settings.Only)
{
    var watch = Stopwatch.StartNew();
    Console.WriteLine($"== experiment {id}");
    switch (id)
    {
        case 1: experiments.PixelMnist(); break;
        case 2: experiments.Cifar10(); break;
        case 3: experiments.DbPedia(); break;
        case 4: experiments.LongSequences(); break;
        case 5: experiments.Overheads(); break;
        default: Console.WriteLine($"unknown experiment {id}"); break;
    }
    Console.WriteLine($"== experiment {id} took {watch.Elapsed.TotalMinutes:F1} min");
}
Console.WriteLine($"Wrote {Path.Combine(settings.Output, "results.md")}");

internal sealed record BenchSettings(int[] Only, double Minutes, int TrainRows, int TestRows, string Output, string Data, int Threads)
{
    public static BenchSettings Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        return new BenchSettings(
            Get("--only", "5,4,1,2,3").Split(',').Select(int.Parse).ToArray(),
            double.Parse(Get("--minutes", "2"), CultureInfo.InvariantCulture),
            int.Parse(Get("--train-rows", "6400")),
            int.Parse(Get("--test-rows", "1000")),
            Get("--out", "docs"),
            Get("--data", Path.GetFullPath(Path.Combine("..", "shared", "data"))),
            int.Parse(Get("--threads", Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture))));
    }
}
