using System.Text.Json;
using Microsoft.ML.AuxRnn.Cli.Commands;
using Microsoft.ML.AuxRnn.Runtime;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli;

/// <summary>
/// The <c>auxrnn</c> command: <c>train</c>, <c>evaluate</c>, <c>predict</c>, <c>download</c>, <c>demo</c> (the
/// default, with no arguments) and <c>help</c>. Exit codes: 0 success, 1 failure (bad data, training error),
/// 2 bad command line.
/// </summary>
internal static class AuxRnnCli
{
    public static int Run(string[] args)
    {
        bool json = args.Any(a => a.Equals("--json", StringComparison.OrdinalIgnoreCase));
        // With --json, people-facing output goes to stderr and stdout holds only the JSON document.
        var console = json
            ? AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) })
            : AnsiConsole.Console;
        return Run(args, console, Console.Out);
    }

    /// <summary>Runs a command line, writing to <paramref name="console"/> and the <c>--json</c> document to <paramref name="jsonOut"/>.</summary>
    public static int Run(string[] args, IAnsiConsole console, TextWriter jsonOut)
    {
        try
        {
            var line = CommandLine.Parse(args, OptionsBinder.BooleanOptionNames);
            if (line.Flag("help") || line.Flag("h"))
            {
                Help.Show(console, line.Command);
                return 0;
            }

            object? result = line.Command switch
            {
                "demo" => DemoCommand.Run(line, console),
                "train" => TrainCommand.Run(line, console),
                "evaluate" or "eval" => EvaluateCommand.Run(line, console),
                "predict" => PredictCommand.Run(line, console),
                "download" => DownloadCommand.Run(line, console),
                "help" => Help.Show(console, line.Positional.FirstOrDefault()),
                _ => throw new UsageException($"Unknown command '{line.Command}'. Commands: train, evaluate, predict, download, demo, help."),
            };
            if (line.Flag("json") && result != null)
            {
                jsonOut.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
                jsonOut.Flush();
            }
            return 0;
        }
        catch (UsageException e)
        {
            console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException
                                       or InvalidOperationException or OperationCanceledException or HttpRequestException)
        {
            console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            if (Environment.GetEnvironmentVariable("AUXRNN_DEBUG") == "1")
                console.WriteException(e);
            return 1;
        }
    }

    /// <summary>Prepares TorchSharp's native library before any command touches a model.</summary>
    internal static void EnsureTorch() => TorchNativeLoader.EnsureInitialized();
}
