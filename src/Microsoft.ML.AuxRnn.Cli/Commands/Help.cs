using Spectre.Console;

namespace Microsoft.ML.AuxRnn.Cli.Commands;

internal static class Help
{
    public static object? Show(IAnsiConsole console, string? command)
    {
        console.MarkupLine("[bold]auxrnn[/] — long-sequence classifiers with auxiliary losses (r-LSTM, p-LSTM; Trinh et al., ICML 2018)");
        console.WriteLine();
        console.MarkupLine("  [bold]auxrnn[/]                                   built-in demonstration: truncated LSTM vs r-LSTM on a synthetic");
        console.MarkupLine("                                           long-range task (no download; [grey]--tiny[/] for a quick run)");
        console.MarkupLine("  [bold]auxrnn train[/] --data PATH [[--format mnist|cifar10|csv|images]] [[options]] --out model.zip");
        console.MarkupLine("  [bold]auxrnn evaluate[/] --model model.zip --data PATH     accuracy, per-class table, confusion matrix");
        console.MarkupLine("  [bold]auxrnn predict[/] --model model.zip FILE…            image files (or text files for csv models)");
        console.MarkupLine("  [bold]auxrnn download[/] mnist|cifar10|dbpedia [[--cache DIR]]  fetch, verify checksums, cache");
        console.WriteLine();
        if (command is "train" or null or "demo")
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
