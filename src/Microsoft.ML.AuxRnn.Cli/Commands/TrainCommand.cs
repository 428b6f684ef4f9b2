using System.Diagnostics;
using Microsoft.ML.Data;
using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

/// <summary><c>auxrnn train</c>: load data, fit featurizer + AuxLstmClassifier with a progress display, save, evaluate.</summary>
internal static class TrainCommand
{
    public static object Run(CommandLine line, IAnsiConsole console)
    {
        AuxRnnCli.EnsureTorch();
        var manifest = new ModelManifest();
        string? formatText = line.String("format");
        string? data = line.String("data") ?? line.Positional.FirstOrDefault();
        if (line.Flag("download"))
        {
            if (formatText == null)
                throw new UsageException("--download needs --format mnist, cifar10 or csv (DBpedia).");
            data = DownloadCommand.Fetch(DownloadCommand.DatasetFor(formatText), DownloadCommand.CacheFolder(line.String("cache")), console);
        }
        if (data == null)
            throw new UsageException("Missing --data PATH (or run 'auxrnn' alone for the built-in demonstration, or add --download --format mnist).");

        manifest.Format = formatText != null ? DataSource.ParseFormat(formatText) : DataSource.Detect(data);
        manifest.TrainedOn = Path.GetFullPath(data);
        manifest.PermutationSeed = line.Int("permutation-seed");
        ConfigureImages(line, manifest);
        int? maxRows = line.Int("max-rows", 1);
        int? maxTestRows = line.Int("max-test-rows", 1) ?? maxRows;
        string output = line.String("out") ?? "model.zip";
        string? testPath = line.String("test");
        string? validationPath = line.String("validation");
        bool evaluate = !line.Flag("no-evaluate");

        var options = new AuxLstmClassifierOptions();
        var set = OptionsBinder.Bind(line, options);
        if (!set.Contains("step-size"))
            options.StepSize = manifest.Format is DataFormat.Csv ? 1 : (int)manifest.Channels;
        line.Flag("json");
        line.ThrowOnUnused();
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }

        var ml = new MLContext(options.Seed ?? 0);
        var train = DataSource.Load(ml, data, manifest, DataRole.Train, maxRows, required: true)!;
        manifest.Classes = DataSource.ClassNames(train);
        var test = !evaluate ? null
            : testPath != null ? DataSource.Load(ml, testPath, manifest, DataRole.Test, maxTestRows, required: true, explicitPath: true)
            : DataSource.Load(ml, data, manifest, DataRole.Test, maxTestRows, required: false);

        // The featurizer (text → characters, image files → pixels) is fitted first, so the validation set can be
        // featurized for the classifier; both go into the saved model.
        var featurizer = DataSource.ModelFeaturizer(ml, manifest)?.Fit(train);
        manifest.FeaturizerInModel = featurizer != null;
        var featurizedTrain = featurizer?.Transform(train) ?? train;
        if (validationPath != null)
        {
            var validation = DataSource.Load(ml, validationPath, manifest, DataRole.Test, maxTestRows, required: true, explicitPath: true)!;
            options.ValidationSet = featurizer?.Transform(validation) ?? validation;
        }
        manifest.Options = OptionsBinder.Members.ToDictionary(m => m.Name, m => m.GetValue(options) is Enum e ? (object?)e.ToString() : m.GetValue(options));

        console.MarkupLine($"Training [bold]{Markup.Escape(Describe(options))}[/] on {manifest.Format.ToString().ToLowerInvariant()} data from {Markup.Escape(data)} " +
                           $"({manifest.Classes.Length} classes{(manifest.PermutationSeed is int s ? $", pixels permuted with seed {s}" : "")}).");
        var watch = Stopwatch.StartNew();
        int totalEpochs = options.Epochs + (options.AuxiliaryLoss == AuxiliaryLoss.None ? 0 : options.PretrainEpochs);
        var epochs = new List<EpochLine>();
        // Ctrl+C stops training at the next mini-batch (through the options' token) instead of killing the process.
        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancellation.Cancel();
        };
        options.CancellationToken = cancellation.Token;
        Console.CancelKeyPress += onCancel;
        ITransformer classifier;
        try
        {
            classifier = ProgressDisplay.Run(console, ml, Describe(options), totalEpochs,
                () => ml.Transforms.AuxLstmClassifier(options).Fit(featurizedTrain), epochs);
        }
        catch (OperationCanceledException e) when (cancellation.IsCancellationRequested)
        {
            throw new OperationCanceledException("Training was cancelled (Ctrl+C) before it finished; no model was saved.", e, cancellation.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        var trainingTime = watch.Elapsed;
        var model = featurizer == null ? classifier : new TransformerChain<ITransformer>(featurizer, classifier);

        string? folder = Path.GetDirectoryName(Path.GetFullPath(output));
        if (folder != null)
            Directory.CreateDirectory(folder);
        ml.Model.Save(model, train.Schema, output);
        manifest.WriteInto(output);
        console.MarkupLine($"Saved the model to [bold]{Markup.Escape(output)}[/] ({new FileInfo(output).Length / 1024.0:N0} KiB) after {trainingTime.TotalSeconds:N1} s of training.");

        EvaluationResult? evaluation = null;
        if (test != null)
        {
            evaluation = EvaluationResult.Compute(ml, model, test);
            evaluation.Render(console, "Test set");
        }

        var summary = new Table().Border(TableBorder.Rounded).Title("Result").HideHeaders();
        summary.AddColumn("").AddColumn("");
        summary.AddRow("model", Markup.Escape(Describe(options)));
        summary.AddRow("epochs", epochs.Count.ToString());
        if (epochs.LastOrDefault(e => !e.Pretraining) is { } last)
        {
            if (last.Loss is double loss)
                summary.AddRow("final training loss", loss.ToString("F4"));
            if (last.Accuracy is double acc)
                summary.AddRow("final training accuracy", acc.ToString("P1"));
        }
        summary.AddRow("training time", $"{trainingTime.TotalSeconds:N1} s");
        if (evaluation != null)
            summary.AddRow("test accuracy", $"[bold]{evaluation.Accuracy:P2}[/] ({evaluation.Rows:N0} rows)");
        summary.AddRow("saved to", Markup.Escape(output));
        console.Write(summary);

        return new
        {
            command = "train",
            model = Path.GetFullPath(output),
            format = manifest.Format.ToString().ToLowerInvariant(),
            data = manifest.TrainedOn,
            classes = manifest.Classes,
            permutationSeed = manifest.PermutationSeed,
            options = manifest.Options,
            trainingSeconds = trainingTime.TotalSeconds,
            epochs = epochs.Select(e => new { epoch = e.Epoch, pretraining = e.Pretraining, loss = e.Loss, auxiliaryLoss = e.AuxiliaryLoss, accuracy = e.Accuracy, validationAccuracy = e.ValidationAccuracy, seconds = e.Seconds }),
            test = evaluation?.ToJson(),
        };
    }

    internal static string Describe(AuxLstmClassifierOptions o)
    {
        string name = o.AuxiliaryLoss switch
        {
            AuxiliaryLoss.Reconstruct => "r-LSTM",
            AuxiliaryLoss.Predict => "p-LSTM",
            _ => "LSTM",
        };
        string bptt = o.TruncationLength is int k ? $"truncated {k}" : "full BPTT";
        return $"{name} {o.HiddenSize}, {bptt}";
    }

    private static void ConfigureImages(CommandLine line, ModelManifest manifest)
    {
        int? size = line.Int("image-size", 1);
        int? width = line.Int("image-width", 1) ?? size;
        int? height = line.Int("image-height", 1) ?? size;
        string? channels = line.String("channels");
        switch (manifest.Format)
        {
            case DataFormat.Mnist:
            case DataFormat.Cifar10:
                if (width != null || height != null || channels != null)
                    throw new UsageException($"--image-size and --channels apply to --format images; {manifest.Format.ToString().ToLowerInvariant()} images have a fixed size.");
                bool cifar = manifest.Format == DataFormat.Cifar10;
                manifest.ImageWidth = manifest.ImageHeight = cifar ? 32 : 28;
                manifest.Channels = cifar ? PixelChannels.Rgb : PixelChannels.Grey;
                break;
            case DataFormat.Images:
                manifest.ImageWidth = width ?? 32;
                manifest.ImageHeight = height ?? 32;
                manifest.Channels = channels == null ? PixelChannels.Grey : (PixelChannels)OptionsBinder.Convert(channels, typeof(PixelChannels), "channels")!;
                break;
            case DataFormat.Csv:
                if (width != null || height != null || channels != null || manifest.PermutationSeed != null)
                    throw new UsageException("--image-size, --channels and --permutation-seed do not apply to --format csv.");
                break;
        }
    }
}
