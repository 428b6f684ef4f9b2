using System.Text.Json;
using Microsoft.ML.AuxRnn.Cli;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Tests.Cli;

/// <summary>Runs the auxrnn command in process and captures what it prints.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Console, string Json)
    {
        public JsonElement Document => JsonDocument.Parse(Json).RootElement;
    }

    public static Result Run(params string[] args)
    {
        var console = new StringWriter();
        var json = new StringWriter();
        var ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(console),
        });
        ansi.Profile.Width = 4000; // no wrapping: tests look for whole messages
        int code = AuxRnnCli.Run(args, ansi, json);
        return new Result(code, console.ToString(), json.ToString());
    }

    /// <summary>Model options small enough for a test: a few seconds on one core.</summary>
    public static readonly string[] TinyModel =
    {
        "--hidden-size", "8", "--embedding-size", "8", "--classifier-hidden-size", "16", "--epochs", "1",
        "--batch-size", "32", "--seed", "5", "--device", "cpu", "--segment-length", "8", "--auxiliary-loss", "none",
    };
}
