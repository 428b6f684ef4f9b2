using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.AuxRnn.Data;

/// <summary>
/// Reads one row's sequence from an ML.NET row: float vectors (continuous values or integer levels) or key
/// vectors, checked on the way (empty rows, NaN or infinite values, levels out of range, lengths that are not a
/// whole number of steps), with errors that name the column and the row.
/// </summary>
internal sealed class SequenceRowReader
{
    private readonly DataViewRow _row;
    private readonly string _column;
    private readonly SequenceInputType _type;
    private readonly ValueGetter<VBuffer<float>>? _floats;
    private readonly Func<int[]>? _keys;
    private VBuffer<float> _floatBuffer;

    public SequenceRowReader(DataViewRow row, DataViewSchema.Column column, SequenceInputType type)
    {
        _row = row;
        _column = column.Name;
        _type = type;
        if (type.Kind == SequenceInputKind.Keys)
        {
            var raw = ((KeyDataViewType)((VectorDataViewType)column.Type).ItemType).RawType;
            _keys = raw == typeof(byte) ? KeyReader<byte>(column, v => v)
                : raw == typeof(ushort) ? KeyReader<ushort>(column, v => v)
                : raw == typeof(uint) ? KeyReader<uint>(column, v => v)
                : KeyReader<ulong>(column, v => v);
        }
        else
        {
            _floats = row.GetGetter<VBuffer<float>>(column);
        }
    }

    /// <summary>Adds the current row's sequence to <paramref name="dataset"/> with the given 0-based label (−1: none).</summary>
    public void AddTo(SequenceDataset dataset, int label)
    {
        if (_type.Kind == SequenceInputKind.Continuous)
            dataset.AddValues(ReadValues(), label);
        else
            dataset.AddTokens(ReadTokens(), label);
    }

    /// <summary>The current row's tokens (key or level input).</summary>
    public int[] ReadTokens()
    {
        if (_keys != null)
            return _keys();

        float[] values = ReadFloats();
        var tokens = new int[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!(v >= 0 && v < _type.Levels) || v != MathF.Floor(v))
                throw Error($"has value {v} at index {i}, but {nameof(AuxLstmClassifierOptions.InputLevels)} = {_type.Levels} needs integers 0..{_type.Levels - 1}");
            tokens[i] = (int)v;
        }
        return tokens;
    }

    /// <summary>The current row's values (continuous input), a whole number of steps.</summary>
    public float[] ReadValues()
    {
        float[] values = ReadFloats();
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
                throw Error($"has {values[i]} at index {i}; sequences must be finite numbers");
        }
        if (values.Length % _type.StepSize != 0)
            throw Error($"has {values.Length} values, which is not a whole number of steps of {nameof(AuxLstmClassifierOptions.StepSize)} = {_type.StepSize}");
        return values;
    }

    private float[] ReadFloats()
    {
        _floats!(ref _floatBuffer);
        if (_floatBuffer.Length == 0)
            throw Error("is empty; every sequence needs at least one step");
        var values = new float[_floatBuffer.Length];
        _floatBuffer.CopyTo(values);
        return values;
    }

    private Func<int[]> KeyReader<T>(DataViewSchema.Column column, Func<T, ulong> toUInt64)
    {
        var getter = _row.GetGetter<VBuffer<T>>(column);
        VBuffer<T> buffer = default;
        ulong count = _type.KeyCount;
        return () =>
        {
            getter(ref buffer);
            if (buffer.Length == 0)
                throw Error("is empty; every sequence needs at least one step");
            var tokens = new int[buffer.Length];
            if (buffer.IsDense)
            {
                var values = buffer.GetValues();
                for (int i = 0; i < values.Length; i++)
                    tokens[i] = Token(toUInt64(values[i]), count, i);
            }
            else
            {
                var values = buffer.GetValues();
                var indices = buffer.GetIndices();
                for (int i = 0; i < values.Length; i++)
                    tokens[indices[i]] = Token(toUInt64(values[i]), count, indices[i]);
            }
            return tokens;
        };
    }

    private int Token(ulong key, ulong count, int index)
    {
        // Larger values than the key count break the key type's contract.
        if (key > count)
            throw Error($"has key {key} at index {index}, beyond its key count {count}");
        // Through the model's vocabulary (unseen keys → its unknown token); without one key value k is token k, 0 (missing) token 0.
        return _type.KeyMap is { } map ? map.Map(key) : (int)key;
    }

    private InvalidOperationException Error(string what) =>
        new($"Row {_row.Position} of sequence column '{_column}' {what}.");
}

/// <summary>What <see cref="SequenceColumnReader.ReadForTraining"/>'s pass found.</summary>
/// <param name="Rows">Rows that train (labeled, plus the unlabeled ones when kept).</param>
/// <param name="Labeled">Rows with a label.</param>
/// <param name="Unlabeled">Rows whose label is missing (key 0), kept or not.</param>
/// <param name="ClassesSeen">Distinct labels among the labeled rows.</param>
/// <param name="MaxLength">Steps of the longest row.</param>
/// <param name="Bytes">What the rows would take in memory.</param>
/// <param name="Streamed">Whether the rows stay in the data view and stream through the shuffle buffer every epoch.</param>
internal sealed record TrainingRowsSummary(int Rows, long Labeled, long Unlabeled, int ClassesSeen, int MaxLength, long Bytes, bool Streamed);

/// <summary>Turns an <see cref="IDataView"/> (sequence column and key label column) into an in-memory <see cref="SequenceDataset"/>.</summary>
internal static class SequenceColumnReader
{
    /// <summary>
    /// Reads every row with a label. Rows whose label is missing (key 0) are counted in <paramref name="unlabeled"/>
    /// and skipped, or kept with label −1 when <paramref name="keepUnlabeled"/> (they train the auxiliary loss only).
    /// Labels become 0-based class indices.
    /// </summary>
    public static SequenceDataset ReadLabeled(IExceptionContext ectx, IDataView data, DataViewSchema.Column sequence, SequenceInputType type,
        DataViewSchema.Column label, out long unlabeled, bool keepUnlabeled = false)
    {
        var dataset = type.NewDataset();
        using var cursor = new LabeledRowCursor(ectx, data, sequence, type, label, keepUnlabeled);
        while (cursor.MoveNext(out int key))
            cursor.Reader!.AddTo(dataset, key);
        unlabeled = cursor.Unlabeled;
        return dataset;
    }

    /// <summary>
    /// The training rows, in one pass over the data: all in memory (a <see cref="SequenceDataset"/>, as
    /// <see cref="ReadLabeled"/> reads them) when they take at most <paramref name="bufferBytes"/>, else a
    /// <see cref="StreamedSequenceRows"/> that reads them again every epoch through a shuffle buffer of that size.
    /// The pass checks every row (errors name the column and the row), counts the rows, the unlabeled ones and the
    /// classes seen, finds the longest row and sums the standardisation statistics; it holds at most
    /// <paramref name="bufferBytes"/> of rows.
    /// </summary>
    public static ITrainingRows ReadForTraining(IExceptionContext ectx, IDataView data, DataViewSchema.Column sequence, SequenceInputType type,
        DataViewSchema.Column label, bool keepUnlabeled, long bufferBytes, out TrainingRowsSummary summary)
    {
        SequenceDataset? dataset = type.NewDataset();
        var stats = type.Discrete ? null : new StandardizationStats(type.StepSize);
        var seen = new bool[checked((int)((KeyDataViewType)label.Type).Count)];
        long held = 0, rows = 0, labeled = 0, bytes = 0;
        int maxLength = 0;
        using var cursor = new LabeledRowCursor(ectx, data, sequence, type, label, keepUnlabeled);
        while (cursor.MoveNext(out int key))
        {
            if (++rows > int.MaxValue)
                throw ectx.Except($"The training data has more than {int.MaxValue:N0} rows to train on in column '{sequence.Name}'; split it.");
            int length, items;
            if (type.Discrete)
            {
                var tokens = cursor.Reader!.ReadTokens();
                dataset?.AddTokens(tokens, key);
                length = items = tokens.Length;
            }
            else
            {
                var values = cursor.Reader!.ReadValues();
                stats!.Add(values);
                dataset?.AddValues(values, key);
                items = values.Length;
                length = items / type.StepSize;
            }
            maxLength = Math.Max(maxLength, length);
            if (key >= 0)
            {
                labeled++;
                seen[key] = true;
            }
            long rowBytes = StreamedSequenceRows.RowBytes(items);
            bytes += rowBytes;
            held += rowBytes;
            if (dataset is not null && held > bufferBytes)
                dataset = null; // more than the buffer holds: the rows stay in the data view, streamed every epoch
        }
        summary = new TrainingRowsSummary((int)rows, labeled, cursor.Unlabeled, seen.Count(s => s), maxLength, bytes, dataset is null);
        return dataset is not null
            ? dataset
            : new StreamedSequenceRows(ectx, data, sequence, type, label, keepUnlabeled, bufferBytes, (int)rows, maxLength, stats);
    }

    /// <summary>A getter of a key column's raw value as <see cref="ulong"/>, whatever its raw type.</summary>
    public static Func<ulong> LabelReader(DataViewRow row, DataViewSchema.Column label)
    {
        var raw = label.Type.RawType;
        if (raw == typeof(byte))
            return Wrap<byte>(row, label, v => v);
        if (raw == typeof(ushort))
            return Wrap<ushort>(row, label, v => v);
        if (raw == typeof(uint))
            return Wrap<uint>(row, label, v => v);
        return Wrap<ulong>(row, label, v => v);

        static Func<ulong> Wrap<T>(DataViewRow row, DataViewSchema.Column label, Func<T, ulong> convert)
        {
            var getter = row.GetGetter<T>(label);
            T value = default!;
            return () =>
            {
                getter(ref value);
                return convert(value);
            };
        }
    }
}
