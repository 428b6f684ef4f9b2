using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

/// <summary><c>auxrnn evaluate</c>: score a data set read the way the model was trained (same format, size, permutation).</summary>
internal static class EvaluateCommand
{
    public static object Run(CommandLine line, IAnsiConsole console)
    {
        AuxRnnCli.EnsureTorch();
        string modelPath = line.Required("model", "the model zip written by 'auxrnn train'");
        string data = line.String("data") ?? line.Positional.FirstOrDefault() ?? throw new UsageException("Missing --data PATH (the test data).");
        int? maxRows = line.Int("max-rows", 1);
        line.Flag("json");
        line.ThrowOnUnused();

        var manifest = ModelManifest.ReadFrom(modelPath);
        var ml = new MLContext(seed: 0);
        var model = ml.Model.Load(modelPath, out _);
        var test = DataSource.Load(ml, data, manifest, DataRole.Test, maxRows, required: true, explicitPath: true)!;
        var result = EvaluationResult.Compute(ml, model, test);
        result.Render(console, $"{Path.GetFileName(modelPath)} on {data}");
        return new { command = "evaluate", model = Path.GetFullPath(modelPath), data = Path.GetFullPath(data), result = result.ToJson() };
    }
}
