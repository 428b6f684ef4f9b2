using System.IO.Compression;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

public class ConcurrencyAndDeterminismTests
{
    private const int Threads = 4;

    private static (MLContext Ml, IDataView Test, TransformerChain<AuxLstmClassifierTransformer> Model) Fit(int seed = 7)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Synthetic.Trends(48, 3, 20));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions(o =>
            {
                o.Seed = seed;
                o.Epochs = 2;
                o.AuxiliaryLoss = AuxiliaryLoss.Predict;
                o.ScoringBatchSize = 16;
            })))
            .Fit(train);
        return (ml, ml.Data.LoadFromEnumerable(Synthetic.Trends(150, 3, 20, seed: 9)), model);
    }

    /// <summary>Each row's scores, keyed by its row id, from one cursor read to the end.</summary>
    private static Dictionary<DataViewRowId, float[]> Read(DataViewRowCursor cursor)
    {
        var scores = new Dictionary<DataViewRowId, float[]>();
        var id = cursor.GetIdGetter();
        var score = cursor.GetGetter<VBuffer<float>>(cursor.Schema["Score"]);
        DataViewRowId rowId = default;
        VBuffer<float> buffer = default;
        while (cursor.MoveNext())
        {
            id(ref rowId);
            score(ref buffer);
            scores.Add(rowId, buffer.DenseValues().ToArray());
        }
        return scores;
    }

    [Fact]
    public void ParallelCursorsGiveTheSameScoresAsOneThread()
    {
        var (_, test, model) = Fit();
        var scored = model.Transform(test);
        var columns = new[] { scored.Schema["Score"] };
        Dictionary<DataViewRowId, float[]> single;
        using (var cursor = scored.GetRowCursor(columns))
            single = Read(cursor);
        single.Should().HaveCount(150);

        // Four threads, each with its own cursor over the same scored view, at the same time.
        using var start = new Barrier(Threads);
        var results = new Dictionary<DataViewRowId, float[]>[Threads];
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            using var cursor = scored.GetRowCursor(columns);
            start.SignalAndWait();
            results[t] = Read(cursor);
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        foreach (var result in results)
        {
            result.Keys.Should().BeEquivalentTo(single.Keys);
            result.Where(kv => !kv.Value.SequenceEqual(single[kv.Key])).Should().BeEmpty("every thread gets the single-thread scores bit for bit");
        }

        // A cursor set, as ML.NET's parallel consumers ask for it: every row exactly once, with the same scores.
        var set = scored.GetRowCursorSet(columns, Threads);
        var parts = new Dictionary<DataViewRowId, float[]>[set.Length];
        var readers = set.Select((cursor, i) => new Thread(() => parts[i] = Read(cursor))).ToList();
        readers.ForEach(r => r.Start());
        readers.ForEach(r => r.Join());
        foreach (var cursor in set)
            cursor.Dispose();
        var merged = parts.SelectMany(p => p).ToList();
        merged.Select(kv => kv.Key).Should().OnlyHaveUniqueItems().And.BeEquivalentTo(single.Keys);
        merged.Where(kv => !kv.Value.SequenceEqual(single[kv.Key])).Should().BeEmpty();
    }

    [Fact]
    public void OnePredictionEnginePerThreadGivesTheSameScoresAsOneThread()
    {
        var (ml, test, model) = Fit();
        var rows = ml.Data.CreateEnumerable<SequenceRow>(test, reuseRowObject: false).ToArray();
        var engine = ml.Model.CreatePredictionEngine<SequenceRow, ScoreRow>(model);
        var single = rows.Select(r => engine.Predict(r).Score).ToArray();

        using var start = new Barrier(Threads);
        var results = new float[Threads][][];
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var own = ml.Model.CreatePredictionEngine<SequenceRow, ScoreRow>(model);
            start.SignalAndWait();
            // Each thread scores every row, starting at a different one, so different rows run at the same time.
            var scores = new float[rows.Length][];
            for (int k = 0; k < rows.Length; k++)
            {
                int i = (k + t * rows.Length / Threads) % rows.Length;
                scores[i] = own.Predict(rows[i]).Score;
            }
            results[t] = scores;
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        foreach (var scores in results)
        {
            for (int i = 0; i < rows.Length; i++)
                scores[i].Should().Equal(single[i], $"row {i}");
        }
    }

    [Fact]
    public void TheSameSeedAndDataGiveTheSameModelFileAndScores()
    {
        var (ml, test, a) = Fit(seed: 7);
        var (_, _, b) = Fit(seed: 7);
        var (_, _, c) = Fit(seed: 8);
        string folder = Directory.CreateTempSubdirectory("auxrnn-determinism-").FullName;
        try
        {
            var files = new[] { a, b, c }.Select((model, i) =>
            {
                string path = Path.Combine(folder, $"model{i}.zip");
                ml.Model.Save(model, test.Schema, path);
                return ModelZip.Entries(path);
            }).ToArray();

            // Zip timestamps differ; every entry's bytes must not.
            files[1].Keys.Should().BeEquivalentTo(files[0].Keys);
            foreach (var (name, bytes) in files[0])
                files[1][name].Should().Equal(bytes, $"entry '{name}' of the same seed's model");
            string weights = files[0].Keys.Single(k => k.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal));
            files[2][weights].Should().NotEqual(files[0][weights], "another seed trains other weights");

            var scoresA = a.Transform(test).GetColumn<float[]>("Score").ToArray();
            var scoresB = b.Transform(test).GetColumn<float[]>("Score").ToArray();
            scoresB.Should().HaveCount(150);
            for (int i = 0; i < scoresA.Length; i++)
                scoresB[i].Should().Equal(scoresA[i], $"row {i}");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }


    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
