using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Benchmarks;

/// <summary>
/// Issue #12, "training data larger than memory": peak memory of Fit over the same number of mini-batches on a
/// generator-backed data view of 10,000 vs 1,000,000 rows of 1,000 steps (3.7 GiB of floats), with the plain LSTM
/// baseline. The rows that exceed <see cref="AuxLstmClassifierOptions.ShuffleBufferMegabytes"/> stream through the
/// shuffle buffer; the peak (VmHWM, reset through /proc/self/clear_refs) should not grow with the rows.
/// </summary>
/// <remarks>Usage: <c>--streaming [--rows 10000,1000000] [--steps 1000] [--batches 200] [--batch-size 32] [--buffer-mb 40]</c>.</remarks>
internal static class Streaming
{
    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    public static void Run(string[] args, int threads)
    {
        string Arg(string name, string fallback) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        long[] rowCounts = Arg("--rows", "10000,1000000").Split(',').Select(long.Parse).ToArray();
        int steps = int.Parse(Arg("--steps", "1000"), CultureInfo.InvariantCulture);
        int batches = int.Parse(Arg("--batches", "200"), CultureInfo.InvariantCulture);
        int batchSize = int.Parse(Arg("--batch-size", "32"), CultureInfo.InvariantCulture);
        int bufferMb = int.Parse(Arg("--buffer-mb", "40"), CultureInfo.InvariantCulture);

        var options = new AuxLstmClassifierOptions
        {
            AuxiliaryLoss = AuxiliaryLoss.None,
            BatchSize = batchSize,
            Epochs = 1,
            ShuffleBufferMegabytes = bufferMb,
            Seed = 1,
            Device = ComputeDevice.Cpu,
            NumberOfThreads = threads,
        };
        Console.WriteLine($"streaming: {string.Join(" vs ", rowCounts.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} rows x {steps:N0} steps, " +
            $"{batches} mini-batches of {batchSize}, buffer {bufferMb} MiB, LSTM baseline (H {options.HiddenSize}, truncation {options.TruncationLength}), {threads} threads");

        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("shuffle buffer", StringComparison.Ordinal) || e.Message.Contains("Stopped after", StringComparison.Ordinal)) log.Add(e.Message); };
        AuxLstmClassifierTransformer Fit(IDataView data)
        {
            var estimator = ml.Transforms.AuxLstmClassifier(options);
            estimator.MaxBatches = batches;
            return estimator.Fit(data);
        }
        Fit(new GeneratedRows(200, steps)); // warm-up: libtorch's kernels, the LSTM kernel check

        var results = new List<(long Rows, double Peak, double Before, double Seconds, int Batches)>();
        foreach (long rows in rowCounts)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            MallocTrim(0);
            Measure.ResetPeak();
            double before = Measure.ResidentMiB();
            log.Clear();
            var watch = Stopwatch.StartNew();
            var model = Fit(new GeneratedRows(rows, steps));
            double seconds = watch.Elapsed.TotalSeconds;
            double peak = Measure.PeakMiB();
            int trained = model.TrainingHistory.Sum(e => e.Batches);
            results.Add((rows, peak, before, seconds, trained));
            Console.WriteLine($"{rows,12:N0} rows ({rows * steps * 4.0 / (1 << 30):F2} GiB of floats): peak RSS {peak:F0} MiB (+{peak - before:F0} over {before:F0}), " +
                $"{trained} mini-batches, Fit {seconds:F1} s{(log.Any(m => m.Contains("shuffle buffer", StringComparison.Ordinal)) ? ", streamed" : ", in memory")}");
        }
        if (results.Count >= 2)
            Console.WriteLine($"ratio of peaks, largest / smallest: {results[^1].Peak / results[0].Peak:F3}");
    }

    /// <summary>Rows generated on the fly from their index: a key Label (2 classes) and a vector of floats whose trend is the class.</summary>
    private sealed class GeneratedRows : IDataView
    {
        private readonly long _rows;
        private readonly int _steps;

        public GeneratedRows(long rows, int steps)
        {
            _rows = rows;
            _steps = steps;
            var builder = new DataViewSchema.Builder();
            builder.AddColumn("Label", new KeyDataViewType(typeof(uint), 2));
            builder.AddColumn("Features", new VectorDataViewType(NumberDataViewType.Single, steps));
            Schema = builder.ToSchema();
        }

        public DataViewSchema Schema { get; }

        public bool CanShuffle => false;

        public long? GetRowCount() => _rows;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { new Cursor(this) };

        private sealed class Cursor : DataViewRowCursor
        {
            private readonly GeneratedRows _view;
            private long _position = -1;

            public Cursor(GeneratedRows view) => _view = view;

            public override DataViewSchema Schema => _view.Schema;

            public override long Position => _position;

            public override long Batch => 0;

            public override bool MoveNext() => ++_position < _view._rows;

            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

            public override bool IsColumnActive(DataViewSchema.Column column) => true;

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                if (column.Index == 0)
                {
                    ValueGetter<uint> label = (ref uint value) => value = (uint)(1 + _position % 2);
                    return (ValueGetter<TValue>)(Delegate)label;
                }
                ValueGetter<VBuffer<float>> features = (ref VBuffer<float> value) =>
                {
                    int steps = _view._steps;
                    var editor = VBufferEditor.Create(ref value, steps);
                    var values = editor.Values;
                    ulong state = (ulong)_position * 0x9E3779B97F4A7C15UL + 1;
                    float slope = (_position % 2 == 0 ? 1f : -1f) / steps;
                    for (int t = 0; t < steps; t++)
                    {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        values[t] = slope * t + ((state >> 40) / (float)(1 << 24) - 0.5f) * 0.2f;
                    }
                    value = editor.Commit();
                };
                return (ValueGetter<TValue>)(Delegate)features;
            }
        }
    }
}
