using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

internal static class Help
{
    public static object? Show(IAnsiConsole console, string? command)
    {
        console.MarkupLine("[bold]auxrnn[/] — long-sequence classifiers with auxiliary losses (r-LSTM, p-LSTM; Trinh et al., ICML 2018)");
        console.WriteLine();
        foreach (var (usage, meaning) in new[]
        {
            ("auxrnn", "the built-in demonstration: truncated LSTM vs r-LSTM on a synthetic long-range task (no download)"),
            ("auxrnn train --data PATH [--format mnist|cifar10|csv|images] [options] --out model.zip", "train, save, then evaluate on the data's test split"),
            ("auxrnn evaluate --model model.zip --data PATH", "accuracy, per-class table, confusion matrix"),
            ("auxrnn predict --model model.zip FILE…", "classify image files (text files for csv models)"),
            ("auxrnn download mnist|cifar10|dbpedia", "fetch into the cache and verify checksums"),
            ("auxrnn help [demo|train]", "this text"),
        })
        {
            console.MarkupLine("  [bold]" + Markup.Escape(usage) + "[/]");
            console.MarkupLine("      " + Markup.Escape(meaning));
        }
        console.WriteLine();
        if (command is "demo" or null)
        {
            var demo = new Table().Border(TableBorder.Simple).Title("demo (the default command)");
            demo.AddColumn("option").AddColumn("meaning");
            demo.AddRow("--tiny", "a few seconds: tiny data and network (what CI runs)");
            demo.AddRow("--rows N / --test-rows N / --epochs N", "training images, held-out images, epochs (default 2,000 / 500 / 40)");
            demo.AddRow("--size N / --glyph-rows N", "image side and rows the digit may use (default 12 / 10: the last 2 rows are blank)");
            demo.AddRow("--truncation-length N|none", "steps the label's gradient reaches, for both models (default 8)");
            demo.AddRow("--auxiliary-truncation-length N / --segment-length N", "r-LSTM's auxiliary gradient window and reconstructed segment (default 64 / 64)");
            demo.AddRow("--hidden-size N / --batch-size N / --learning-rate X / --seed N", "network and optimizer (default 64 / 32 / 0.003 / 1)");
            demo.AddRow("--max-seconds N", "stop each model's training after N seconds (default 140; 0: no limit)");
            demo.AddRow("--only lstm|r-lstm", "train one of the two models");
            console.Write(demo);
        }
        if (command is "train" or null)
        {
            var data = new Table().Border(TableBorder.Simple).Title("train: data");
            data.AddColumn("option").AddColumn("meaning");
            data.AddRow("--data PATH", "MNIST idx folder or images file; CIFAR-10 folder or .bin; Zhang csv file or folder; image folder (class sub-folders, or train/ and test/)");
            data.AddRow("--format F", "mnist | cifar10 | csv | images (default: guessed from PATH)");
            data.AddRow("--download", "fetch the --format data set (mnist, cifar10, csv = DBpedia) into the cache and train on it");
            data.AddRow("--test PATH", "evaluate on this after training (default: the data's own test split when it has one)");
            data.AddRow("--validation PATH", "score each epoch on this and keep the best epoch (ValidationSet)");
            data.AddRow("--no-evaluate", "skip the evaluation after training");
            data.AddRow("--permutation-seed N", "read pixels in a fixed permuted order (permuted MNIST); saved in the model");
            data.AddRow("--image-size N | --image-width N --image-height N", "images: resize to this (default 32; 128 gives 16,384 steps)");
            data.AddRow("--channels grey|rgb", "images: 1 value per step or 3 (default grey; CIFAR-10 is rgb)");
            data.AddRow("--max-rows N / --max-test-rows N", "read only the first N rows (per class for images)");
            data.AddRow("--out FILE", "the model zip (default model.zip)");
            data.AddRow("--json", "print a JSON summary on stdout (progress goes to stderr)");
            console.Write(data);

            var options = new Table().Border(TableBorder.Simple).Title("train: model options (AuxLstmClassifierOptions, one to one)");
            options.AddColumn("option").AddColumn("values").AddColumn("default").AddColumn("meaning");
            foreach (var (option, values, @default, description) in OptionsBinder.Describe())
                options.AddRow(Markup.Escape(option), Markup.Escape(values), Markup.Escape(@default), Markup.Escape(description));
            console.Write(options);
        }
        return null;
    }
}
