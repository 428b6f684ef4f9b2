using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.AuxRnn.Datasets;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>
/// The measurement of issue #10: the r-LSTM on DBpedia text keyed by <c>TokenizeIntoCharactersAsKeys</c> (65,535
/// keys), defaults but a 100-step segment, time per epoch and peak resident memory. Public API only, so the same
/// file measures a build from before dense key vocabularies (65,536-way decoder) and one after.
/// </summary>
/// <remarks>
/// <c>--vocabulary DATA_ROOT [--train-rows N] [--epochs E] [--batch B] [--threads T]</c>: reads DATA_ROOT/dbpedia/train.csv
/// (the first N rows after a seeded shuffle) and prints one line of figures.
/// </remarks>
internal static class VocabularyBench
{
    public static void Run(string dataRoot, int trainRows, int epochs, int batch, int threads)
    {
        var ml = new MLContext(seed: 1);
        var text = ml.Data.TakeRows(ml.Data.ShuffleRows(AuxRnnDatasets.LoadZhangCsv(ml, Path.Combine(dataRoot, "dbpedia", "train.csv")), seed: 1), trainRows);
        var chars = ml.Transforms.Text.TokenizeIntoCharactersAsKeys("Chars", "Text").Fit(text);
        var train = ml.Data.Cache(chars.Transform(text));
        // Each row's buffer is read before the next (GetColumn may reuse one buffer for every row).
        var used = new HashSet<ushort>();
        int longest = 0;
        foreach (var row in train.GetColumn<VBuffer<ushort>>("Chars"))
        {
            used.UnionWith(row.DenseValues().Where(k => k != 0));
            longest = Math.Max(longest, row.Length);
        }
        int distinct = used.Count;
        var options = new AuxLstmClassifierOptions
        {
            SequenceColumnName = "Chars",
            SegmentLength = 100,
            Epochs = epochs,
            BatchSize = batch,
            Seed = 1,
            NumberOfThreads = threads,
        };
        var messages = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("vocabulary", StringComparison.Ordinal) || e.Message.Contains("Epoch ", StringComparison.Ordinal))
                messages.Add(e.Message);
        };

        // What the up-front memory check of this build says one step needs, for the column's key count + 1 tokens
        // (the vocabulary before dense vocabularies) and for the characters the rows use (+ missing and unknown).
        int classes = 14;
        foreach (int tokens in new[] { 65_536, distinct + 2 })
        {
            long bytes = new Training.MemoryEstimate(options, Model.NetworkShape.From(options, true, tokens, 1, classes)).Bytes(longest);
            Console.WriteLine($"memory estimate of a step, {tokens:N0} tokens: {bytes / (double)(1 << 20):F0} MiB");
        }

        Measure.ResetPeak();
        double before = Measure.ResidentMiB();
        var watch = Stopwatch.StartNew();
        using var model = ml.Transforms.AuxLstmClassifier(options).Fit(train);
        double fitSeconds = watch.Elapsed.TotalSeconds;
        double peak = Measure.PeakMiB();
        foreach (string m in messages.Distinct())
            Console.WriteLine(m);
        string F(double v, string format = "F1") => v.ToString(format, CultureInfo.InvariantCulture);
        var epoch = model.TrainingHistory[0];
        Console.WriteLine(string.Join(" | ", new[]
        {
            $"commit {Measure.Commit()}",
            $"{trainRows} documents, {distinct} distinct keys (characters and the tokenizer's 2 markers), longest {longest} steps",
            $"batch {batch}, segment 100, {epochs} epoch(s), {threads} threads",
            $"epoch 1: {F(epoch.Elapsed.TotalSeconds)} s ({F(epoch.Elapsed.TotalSeconds / epoch.Batches)} s per batch)",
            $"Fit {F(fitSeconds)} s",
            $"peak RSS {F(peak, "F0")} MiB (before Fit {F(before, "F0")} MiB)",
        }));
    }
}
