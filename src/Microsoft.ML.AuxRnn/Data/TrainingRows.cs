using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.AuxRnn.Data;

/// <summary>
/// The training rows as the trainer sees them: their count, longest length, content hash and standardisation sums,
/// known before training, and one epoch's shuffled mini-batches at a time. Either all in memory
/// (<see cref="SequenceDataset"/>) or streamed from the <see cref="IDataView"/> through a shuffle buffer
/// (<see cref="StreamedSequenceRows"/>).
/// </summary>
internal interface ITrainingRows
{
    bool IsDiscrete { get; }

    /// <summary>Values per step: 1 for tokens.</summary>
    int StepSize { get; }

    /// <summary>Rows per epoch (labeled, plus unlabeled ones when they train the auxiliary loss).</summary>
    int Count { get; }

    /// <summary>Steps of the longest row.</summary>
    int MaxLength { get; }

    /// <summary>A short hash of the rows (labels and sequences, in order); the same for the same rows whichever the kind.</summary>
    string ContentHash();

    /// <summary>The standardisation sums of float sequences (null for tokens).</summary>
    StandardizationStats? Standardization();

    /// <summary>
    /// The dense vocabulary the rows' keys were mapped to (rows held in memory, key columns), or null: tokens are the
    /// column's raw keys (streamed rows keep them; see <see cref="KeyVocabulary"/>).
    /// </summary>
    KeyVocabulary? KeyMap { get; }

    /// <summary>
    /// One epoch: every row exactly once, in mini-batches of <paramref name="batchSize"/> rows (the last one may be
    /// smaller), in an order drawn from <paramref name="rng"/> (in memory) or from <paramref name="streamSeed"/> (streamed).
    /// </summary>
    IEnumerable<SequenceBatch> Epoch(int batchSize, Random rng, long streamSeed);
}

/// <summary>
/// Per-value sums over all real steps of all rows, from which continuous inputs get their standardisation (mean and
/// standard deviation per value of a step). Rows are added in order, so the figures do not depend on how the rows
/// were read.
/// </summary>
internal sealed class StandardizationStats
{
    private readonly double[] _sum;
    private readonly double[] _squares;

    public StandardizationStats(int stepSize)
    {
        _sum = new double[stepSize];
        _squares = new double[stepSize];
    }

    public int StepSize => _sum.Length;

    public long Steps { get; private set; }

    public void Add(ReadOnlySpan<float> values)
    {
        int s = _sum.Length;
        for (int k = 0; k < values.Length; k++)
        {
            double v = values[k];
            _sum[k % s] += v;
            _squares[k % s] += v * v;
        }
        Steps += values.Length / s;
    }

    /// <summary>Per-value mean and standard deviation (1 for a constant value).</summary>
    public (float[] Mean, float[] Scale) MeanAndScale()
    {
        int s = _sum.Length;
        var mean = new float[s];
        var scale = new float[s];
        for (int k = 0; k < s; k++)
        {
            double m = Steps == 0 ? 0 : _sum[k] / Steps;
            double variance = Steps == 0 ? 0 : Math.Max(0, _squares[k] / Steps - m * m);
            double sd = Math.Sqrt(variance);
            mean[k] = (float)m;
            scale[k] = sd > 1e-6 * Math.Max(1, Math.Abs(m)) ? (float)sd : 1f;
        }
        return (mean, scale);
    }
}

/// <summary>
/// The content hash of training rows: SHA-256 over a header (kind, vocabulary, step size, row count), every label,
/// then every row (its byte length and bytes), cut to 16 hex digits. Fed in that order it needs no row in memory.
/// </summary>
internal sealed class SequenceContentHash : IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public SequenceContentHash(bool discrete, int vocabulary, int stepSize, int count)
    {
        Span<byte> header = stackalloc byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(header, discrete ? 1 : 0);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], vocabulary);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], stepSize);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], count);
        _hash.AppendData(header);
    }

    public void AddLabels(ReadOnlySpan<int> labels) => _hash.AppendData(MemoryMarshal.AsBytes(labels));

    /// <summary>The raw keys behind a dense key vocabulary (<see cref="KeyVocabulary.Keys"/>), in order.</summary>
    public void AddKeys(ReadOnlySpan<ulong> keys) => _hash.AppendData(MemoryMarshal.AsBytes(keys));

    public void AddLabel(int label)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, label);
        _hash.AppendData(bytes);
    }

    public void AddRow(ReadOnlySpan<int> tokens) => AddRowBytes(MemoryMarshal.AsBytes(tokens));

    public void AddRow(ReadOnlySpan<float> values) => AddRowBytes(MemoryMarshal.AsBytes(values));

    private void AddRowBytes(ReadOnlySpan<byte> bytes)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        _hash.AppendData(length);
        _hash.AppendData(bytes);
    }

    public string Finish() => Convert.ToHexString(_hash.GetHashAndReset(), 0, 8).ToLowerInvariant();

    public void Dispose() => _hash.Dispose();
}

/// <summary>
/// A cursor over the rows that train: skips rows whose label is missing (key 0) unless they are kept (label −1, the
/// auxiliary loss only), checks the label against its key count and reads the sequence through a
/// <see cref="SequenceRowReader"/> (which checks it, naming the column and the row).
/// </summary>
internal sealed class LabeledRowCursor : IDisposable
{
    private readonly IExceptionContext _ectx;
    private readonly DataViewRowCursor _cursor;
    private readonly Func<ulong> _label;
    private readonly string _labelName;
    private readonly ulong _classCount;
    private readonly bool _keepUnlabeled;

    public LabeledRowCursor(IExceptionContext ectx, IDataView data, DataViewSchema.Column? sequence, SequenceInputType type,
        DataViewSchema.Column label, bool keepUnlabeled)
    {
        _ectx = ectx;
        _cursor = data.GetRowCursor(sequence is { } s ? new[] { s, label } : new[] { label });
        Reader = sequence is { } column ? new SequenceRowReader(_cursor, column, type) : null;
        _label = SequenceColumnReader.LabelReader(_cursor, label);
        _labelName = label.Name;
        _classCount = ((KeyDataViewType)label.Type).Count;
        _keepUnlabeled = keepUnlabeled;
    }

    /// <summary>Reads the current row's sequence; null when the cursor was made for the labels only.</summary>
    public SequenceRowReader? Reader { get; }

    /// <summary>Rows with a missing label passed so far (kept or not).</summary>
    public long Unlabeled { get; private set; }

    public long Position => _cursor.Position;

    /// <summary>Moves to the next row that trains; <paramref name="label"/> is its 0-based class, or −1 (unlabeled, kept).</summary>
    public bool MoveNext(out int label)
    {
        while (_cursor.MoveNext())
        {
            ulong key = _label();
            if (key == 0)
            {
                Unlabeled++;
                if (!_keepUnlabeled)
                    continue;
                label = -1;
                return true;
            }
            if (key > _classCount)
                throw _ectx.Except($"Row {_cursor.Position} of label column '{_labelName}' has key {key}, beyond its key count {_classCount}.");
            label = checked((int)key - 1);
            return true;
        }
        label = 0;
        return false;
    }

    public void Dispose() => _cursor.Dispose();
}

/// <summary>
/// Training rows left in the <see cref="IDataView"/>: a first pass (<see cref="SequenceColumnReader.ReadForTraining"/>)
/// has counted them, found the longest and summed the standardisation statistics; every epoch then reads them again
/// through a fresh cursor into a shuffle buffer of at most <c>bufferBytes</c> (plus one row) and draws each
/// mini-batch's rows from it at random. Memory is bounded by the buffer and the batch, whatever the number of rows.
/// </summary>
/// <remarks>
/// The buffer shuffles locally: a row can come out of it no earlier than about a buffer's worth of rows before its
/// place in the data (early rows may linger and come out late), as with ML.NET's own shuffle pool. Every row is seen exactly once
/// per epoch, and the order is drawn from a seed per epoch, so runs repeat and resume exactly as long as the
/// <see cref="IDataView"/> yields the same rows in the same order on every cursor.
/// </remarks>
internal sealed class StreamedSequenceRows : ITrainingRows
{
    /// <summary>What a row held in the buffer is taken to cost besides its values: the array's header and the slot.</summary>
    internal const long RowOverheadBytes = 48;

    private readonly IExceptionContext _ectx;
    private readonly IDataView _data;
    private readonly DataViewSchema.Column _sequence;
    private readonly DataViewSchema.Column _label;
    private readonly SequenceInputType _type;
    private readonly bool _keepUnlabeled;
    private readonly StandardizationStats? _stats;
    private string? _hash;

    internal StreamedSequenceRows(IExceptionContext ectx, IDataView data, DataViewSchema.Column sequence, SequenceInputType type,
        DataViewSchema.Column label, bool keepUnlabeled, long bufferBytes, int count, int maxLength, StandardizationStats? stats)
    {
        _ectx = ectx;
        _data = data;
        _sequence = sequence;
        _label = label;
        _type = type;
        _keepUnlabeled = keepUnlabeled;
        BufferBytes = bufferBytes;
        Count = count;
        MaxLength = maxLength;
        _stats = stats;
    }

    public bool IsDiscrete => _type.Discrete;

    /// <summary>Streamed rows keep the column's raw keys as tokens (building a dense vocabulary would need another pass).</summary>
    public KeyVocabulary? KeyMap => null;

    public int StepSize => _type.NetworkStepSize;

    public int Count { get; }

    public int MaxLength { get; }

    /// <summary>The shuffle buffer's size in bytes of held rows.</summary>
    public long BufferBytes { get; }

    /// <summary>Bytes a row of <paramref name="items"/> floats or tokens takes in memory.</summary>
    internal static long RowBytes(int items) => 4L * items + RowOverheadBytes;

    public StandardizationStats? Standardization() => _stats;

    /// <summary>
    /// The same hash <see cref="SequenceDataset.ContentHash"/> gives for these rows. It is computed on first use, with
    /// two more passes over the data (the labels, then the sequences), so only runs with a checkpoint folder pay for it.
    /// </summary>
    public string ContentHash()
    {
        if (_hash is not null)
            return _hash;
        using var hash = new SequenceContentHash(_type.Discrete, _type.Discrete ? _type.Vocabulary : 0, StepSize, Count);
        int rows = 0;
        using (var labels = new LabeledRowCursor(_ectx, _data, null, _type, _label, _keepUnlabeled))
        {
            while (labels.MoveNext(out int label))
            {
                hash.AddLabel(label);
                rows++;
            }
        }
        CheckCount(rows);
        rows = 0;
        using (var cursor = new LabeledRowCursor(_ectx, _data, _sequence, _type, _label, _keepUnlabeled))
        {
            while (cursor.MoveNext(out _))
            {
                if (_type.Discrete)
                    hash.AddRow(cursor.Reader!.ReadTokens());
                else
                    hash.AddRow(cursor.Reader!.ReadValues());
                rows++;
            }
        }
        CheckCount(rows);
        return _hash = hash.Finish();
    }

    public IEnumerable<SequenceBatch> Epoch(int batchSize, Random rng, long streamSeed)
    {
        if (batchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(batchSize));
        var draw = new Random((int)(streamSeed & int.MaxValue));
        var buffer = new List<(int[]? Tokens, float[]? Values, int Label)>();
        long held = 0;
        int read = 0;
        bool more = true;
        using var cursor = new LabeledRowCursor(_ectx, _data, _sequence, _type, _label, _keepUnlabeled);
        var batch = _type.NewDataset();
        while (true)
        {
            // Top the buffer up to its size, then hand one row, drawn uniformly from it, to the batch.
            while (more && held < BufferBytes)
            {
                if (!cursor.MoveNext(out int label))
                {
                    more = false;
                    break;
                }
                if (++read > Count)
                    CheckCount(read);
                if (_type.Discrete)
                {
                    var tokens = cursor.Reader!.ReadTokens();
                    buffer.Add((tokens, null, label));
                    held += RowBytes(tokens.Length);
                }
                else
                {
                    var values = cursor.Reader!.ReadValues();
                    buffer.Add((null, values, label));
                    held += RowBytes(values.Length);
                }
            }
            if (buffer.Count == 0)
                break;

            int pick = draw.Next(buffer.Count);
            var row = buffer[pick];
            buffer[pick] = buffer[^1];
            buffer.RemoveAt(buffer.Count - 1);
            if (row.Tokens is { } t)
            {
                held -= RowBytes(t.Length);
                batch.AddTokens(t, row.Label);
            }
            else
            {
                held -= RowBytes(row.Values!.Length);
                batch.AddValues(row.Values!, row.Label);
            }
            if (batch.Count == batchSize)
            {
                yield return batch.GetBatch(AllRows(batch.Count));
                batch = _type.NewDataset();
            }
        }
        CheckCount(read);
        if (batch.Count > 0)
            yield return batch.GetBatch(AllRows(batch.Count));
    }

    private static int[] AllRows(int count)
    {
        var rows = new int[count];
        for (int i = 0; i < count; i++)
            rows[i] = i;
        return rows;
    }

    private void CheckCount(int rows)
    {
        if (rows != Count)
            throw _ectx.Except($"The training data changed while Fit read it: a first pass over columns '{_sequence.Name}' and '{_label.Name}' found {Count:N0} rows to train on, " +
                $"a later pass {(rows > Count ? "more" : $"{rows:N0}")}. Streamed training reads the data once per epoch; it must yield the same rows every time.");
    }
}
