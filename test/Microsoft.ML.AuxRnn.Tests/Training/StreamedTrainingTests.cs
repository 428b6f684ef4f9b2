using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Training;

/// <summary>
/// Training data larger than <see cref="AuxLstmClassifierOptions.ShuffleBufferMegabytes"/> streams from the data view
/// every epoch through a shuffle buffer: every row once per epoch, in an order drawn per epoch from the seed, with
/// the same hash, statistics and errors as rows read into memory.
/// </summary>
public class StreamedTrainingTests
{
    private const int Length = 10;

    private static GeneratedSequenceDataView View(long rows, Func<long, bool>? unlabeled = null) =>
        new(rows, r => Length + (int)(r % 3)) { Unlabeled = unlabeled ?? (_ => false) };

    private static ITrainingRows Read(IDataView view, long bufferBytes, out TrainingRowsSummary summary, bool keepUnlabeled = false)
    {
        var host = TrainingFixtures.Host();
        var options = new AuxLstmClassifierOptions();
        var sequence = view.Schema["Features"];
        var type = SequenceInputType.FromColumn(host, sequence, options);
        return SequenceColumnReader.ReadForTraining(host, view, sequence, type, view.Schema["Label"], keepUnlabeled, bufferBytes, out summary);
    }

    /// <summary>The rows of one epoch, by their first value (the generator's row index), and their labels.</summary>
    private static List<(int Row, long Label)> EpochRows(ITrainingRows rows, int batchSize, long seed)
    {
        var seen = new List<(int, long)>();
        foreach (var batch in rows.Epoch(batchSize, new Random(0), seed))
        {
            batch.Count.Should().BeLessThanOrEqualTo(batchSize);
            for (int i = 0; i < batch.Count; i++)
                seen.Add(((int)batch.Values![i * batch.MaxLength * batch.StepSize], batch.Labels[i]));
        }
        return seen;
    }

    [Fact]
    public void EveryRowComesOnceAnEpochInAShuffledOrderThatRepeatsUnderTheSeedAndChangesEachEpoch()
    {
        var view = View(500);
        long rowBytes = StreamedSequenceRows.RowBytes(Length + 2);
        var rows = Read(view, 40 * rowBytes, out var summary); // a buffer of about 40 rows for 500
        summary.Streamed.Should().BeTrue();
        rows.Should().BeOfType<StreamedSequenceRows>();
        rows.Count.Should().Be(500);
        rows.MaxLength.Should().Be(Length + 2);

        var first = EpochRows(rows, 16, seed: 11);
        var again = EpochRows(rows, 16, seed: 11);
        var second = EpochRows(rows, 16, seed: 12);

        foreach (var epoch in new[] { first, second })
        {
            epoch.Select(r => r.Row).Should().BeEquivalentTo(Enumerable.Range(0, 500), "every row once per epoch");
            epoch.Should().OnlyContain(r => r.Label == (r.Row % 2), "each row keeps its own label (0-based)");
            // Shuffled: few rows keep their place or follow their neighbour.
            epoch.Select((r, i) => r.Row == i).Count(same => same).Should().BeLessThan(25);
            epoch.Zip(epoch.Skip(1)).Count(p => p.Second.Row == p.First.Row + 1).Should().BeLessThan(50);
            // Local: a row cannot leave the buffer before it is read, and the buffer holds about 40 rows (row sizes vary: 44 at most).
            epoch.Select((r, i) => r.Row - i).Max().Should().BeLessThanOrEqualTo(45);
        }
        again.Should().Equal(first, "the same seed gives the same order");
        second.Select(r => r.Row).Should().NotEqual(first.Select(r => r.Row), "each epoch draws its own order");
        view.SequenceCursors.Should().Be(4, "one checking pass, then a fresh cursor per epoch");
    }

    [Fact]
    public void DataThatFitsTheBufferIsReadIntoMemoryOnceWithTheSameHashAndStatisticsAsStreamedRows()
    {
        var view = View(300, unlabeled: r => r % 7 == 3);
        var inMemory = Read(view, 1L << 20, out var memorySummary, keepUnlabeled: true);
        var streamed = Read(view, 10 * StreamedSequenceRows.RowBytes(Length), out var streamSummary, keepUnlabeled: true);

        inMemory.Should().BeOfType<SequenceDataset>();
        memorySummary.Streamed.Should().BeFalse();
        streamed.Should().BeOfType<StreamedSequenceRows>();
        streamSummary.Should().Be(memorySummary with { Streamed = true });
        memorySummary.Unlabeled.Should().Be(43);
        memorySummary.Rows.Should().Be(300);
        memorySummary.ClassesSeen.Should().Be(2);

        streamed.ContentHash().Should().Be(inMemory.ContentHash(), "a checkpoint is found whichever way the rows are read");
        streamed.Standardization()!.MeanAndScale().Should().BeEquivalentTo(inMemory.Standardization()!.MeanAndScale());
        streamed.MaxLength.Should().Be(inMemory.MaxLength);
        var epoch = EpochRows(streamed, 32, seed: 5);
        epoch.Where(r => r.Label < 0).Select(r => r.Row).Should().BeEquivalentTo(Enumerable.Range(0, 300).Where(r => r % 7 == 3),
            "unlabeled rows stream too, with label -1, to train the auxiliary loss");

        var dropped = Read(view, 10 * StreamedSequenceRows.RowBytes(Length), out var droppedSummary, keepUnlabeled: false);
        droppedSummary.Rows.Should().Be(257);
        EpochRows(dropped, 32, seed: 5).Should().HaveCount(257).And.OnlyContain(r => r.Label >= 0);
        dropped.ContentHash().Should().NotBe(streamed.ContentHash());
    }

    [Fact]
    public void BadRowsAreNamedInTheFirstPassBeforeTrainingAndChangedDataIsCaught()
    {
        var nan = new GeneratedSequenceDataView(400, _ => Length) { ValueOverride = (r, t) => r == 321 && t == 4 ? float.NaN : null };
        var act = () => Read(nan, 1024, out _);
        act.Should().Throw<InvalidOperationException>().WithMessage("Row 321 of sequence column 'Features' has NaN at index 4*");

        var badKey = new GeneratedSequenceDataView(400, _ => Length) { LabelOverride = r => r == 250 ? 9u : null };
        act = () => Read(badKey, 1024, out _);
        act.Should().Throw<InvalidOperationException>().WithMessage("*Row 250 of label column 'Label' has key 9, beyond its key count 2*");

        var empty = new GeneratedSequenceDataView(400, r => r == 399 ? 0 : Length);
        act = () => Read(empty, 1024, out _);
        act.Should().Throw<InvalidOperationException>().WithMessage("Row 399 of sequence column 'Features' is empty*");

        // A view that yields other rows on a later cursor (here: one row fewer) is caught, not trained on silently.
        int cursors = 0;
        var shrinking = new GeneratedSequenceDataView(400, _ => Length) { Unlabeled = r => cursors > 1 && r == 5 };
        var rows = new CursorCounting(shrinking, () => cursors++);
        var streamed = Read(rows, 1024, out _);
        var epoch = () => EpochRows(streamed, 16, seed: 1);
        epoch.Should().Throw<InvalidOperationException>().WithMessage("*training data changed*400 rows*399*");
    }

    [Fact]
    public void AStreamedFitRepeatsUnderTheSeedReadsTheDataOncePerEpochAndResumesFromItsCheckpoint()
    {
        // 3,000 rows of 100 steps: 1.3 MiB, more than a 1 MiB buffer.
        var view = new GeneratedSequenceDataView(3_000, _ => 100);
        string folder = Path.Combine(Path.GetTempPath(), "auxrnn-stream-" + Guid.NewGuid().ToString("N"));
        try
        {
            AuxLstmClassifierOptions Options(int epochs, int seed = 3, string? checkpoint = null) => Synthetic.TinyOptions(o =>
            {
                o.ShuffleBufferMegabytes = 1;
                o.BatchSize = 64;
                o.Epochs = epochs;
                o.Seed = seed;
                o.TruncationLength = 20;
                o.CheckpointFolder = checkpoint;
            });
            var messages = new List<string>();
            (AuxLstmClassifierTransformer Model, float[][] Scores) Fit(AuxLstmClassifierOptions options)
            {
                var ml = new MLContext(seed: 1);
                ml.Log += (_, e) => messages.Add(e.Message);
                var model = ml.Transforms.AuxLstmClassifier(options).Fit(view);
                var scores = model.Transform(new GeneratedSequenceDataView(40, _ => 100, seed: 9)).GetColumn<float[]>("Score").ToArray();
                return (model, scores);
            }

            int cursorsBefore = view.SequenceCursors;
            var straight = Fit(Options(epochs: 2));
            view.SequenceCursors.Should().Be(cursorsBefore + 3, "one checking pass, then one fresh cursor per epoch");
            messages.Should().Contain(m => m.Contains("streams them from the data view through a shuffle buffer"));
            straight.Model.TrainingHistory.Should().HaveCount(2).And.OnlyContain(e => e.Batches == 47);

            var repeat = Fit(Options(epochs: 2));
            repeat.Scores.Should().BeEquivalentTo(straight.Scores, o => o.WithStrictOrdering(), "the same seed trains the same weights");
            repeat.Model.TrainingHistory.Select(e => e.SupervisedLoss).Should().Equal(straight.Model.TrainingHistory.Select(e => e.SupervisedLoss));
            var other = Fit(Options(epochs: 2, seed: 4));
            other.Scores.SelectMany(s => s).Should().NotEqual(straight.Scores.SelectMany(s => s));

            Fit(Options(epochs: 1, checkpoint: folder));
            string expectedHash = SequenceColumnReader.ReadLabeled(TrainingFixtures.Host(), view, view.Schema["Features"],
                SequenceInputType.FromColumn(TrainingFixtures.Host(), view.Schema["Features"], new AuxLstmClassifierOptions()), view.Schema["Label"], out _).ContentHash();
            Directory.GetDirectories(folder).Select(Path.GetFileName).Should().Equal("data-" + expectedHash);
            messages.Clear();
            var resumed = Fit(Options(epochs: 2, checkpoint: folder));
            messages.Should().Contain(m => m.Contains("Resuming from"));
            resumed.Scores.Should().BeEquivalentTo(straight.Scores, o => o.WithStrictOrdering(), "the resumed run trains epoch 2 as the straight one did");
        }
        finally
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void AShuffleBufferThatWouldNotFitBesideATrainingStepIsNamedBeforeTraining()
    {
        var view = new GeneratedSequenceDataView(3_000, _ => 100); // 1.3 MiB: streams through a 1 MiB buffer
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => messages.Add(e.Message);
        var options = Synthetic.TinyOptions(o => o.ShuffleBufferMegabytes = 1);
        long step = new global::Microsoft.ML.AuxRnn.Training.MemoryEstimate(options, global::Microsoft.ML.AuxRnn.Model.NetworkShape.From(options, false, 0, 1, 2)).Bytes(100);
        var estimator = ml.Transforms.AuxLstmClassifier(options);
        estimator.AvailableMemory = () => step + (512 << 10); // the step fits, the step and the buffer do not

        estimator.Invoking(e => e.Fit(view)).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "ShuffleBufferMegabytes").WithMessage("*ShuffleBufferMegabytes = 1 MiB*lower it*");
        messages.Should().NotContain(m => m.Contains("Epoch 1/"), "it fails before training");

        estimator.AvailableMemory = () => step + (3 << 20);
        estimator.MaxBatches = 2;
        estimator.Fit(view).TrainingHistory.Should().ContainSingle().Which.Batches.Should().Be(2, "with room for both it trains");
    }

    /// <summary>A view that calls back each time a cursor over the sequences opens.</summary>
    private sealed class CursorCounting : IDataView
    {
        private readonly IDataView _inner;
        private readonly Action _opened;

        public CursorCounting(IDataView inner, Action opened)
        {
            _inner = inner;
            _opened = opened;
        }

        public bool CanShuffle => false;

        public DataViewSchema Schema => _inner.Schema;

        public long? GetRowCount() => null;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            _opened();
            return _inner.GetRowCursor(columnsNeeded, rand);
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            new[] { GetRowCursor(columnsNeeded, rand) };
    }
}
