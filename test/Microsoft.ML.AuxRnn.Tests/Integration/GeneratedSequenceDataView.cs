using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// A data view of any number of rows generated on the fly from (seed, row index): nothing is held, so a view of a
/// million rows costs no memory until someone materialises it. Columns: <c>Label</c> (key, <see cref="Classes"/>
/// values) and <c>Features</c> (a variable-size vector of Single). Row r's first value is r itself (exact up to
/// 2^24), so a test can tell which rows a mini-batch holds; its label is 1 + (r mod classes) unless
/// <see cref="Unlabeled"/> says the row has none (key 0). The class shows in the trend of the other values.
/// </summary>
internal sealed class GeneratedSequenceDataView : IDataView
{
    private readonly long _rows;
    private readonly Func<long, int> _length;
    private readonly int _seed;

    public GeneratedSequenceDataView(long rows, Func<long, int> length, int classes = 2, int seed = 1)
    {
        _rows = rows;
        _length = length;
        _seed = seed;
        Classes = classes;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn("Label", new KeyDataViewType(typeof(uint), classes));
        builder.AddColumn("Features", new VectorDataViewType(NumberDataViewType.Single));
        Schema = builder.ToSchema();
    }

    public int Classes { get; }

    /// <summary>Rows whose label is missing (key 0); none by default.</summary>
    public Func<long, bool> Unlabeled { get; init; } = _ => false;

    /// <summary>Overrides a row's label key (e.g. one beyond the key count, to test the error).</summary>
    public Func<long, uint?> LabelOverride { get; init; } = _ => null;

    /// <summary>Overrides one value of a row (e.g. a NaN): (row, index) → value, or null.</summary>
    public Func<long, int, float?> ValueOverride { get; init; } = (_, _) => null;

    /// <summary>Cursors opened with the Features column active.</summary>
    public int SequenceCursors => _sequenceCursors;

    /// <summary>Feature vectors handed out so far.</summary>
    public long SequencesGenerated => Interlocked.Read(ref _generated);

    private int _sequenceCursors;
    private long _generated;

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => _rows;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        bool features = columnsNeeded.Any(c => c.Index == 1);
        if (features)
            Interlocked.Increment(ref _sequenceCursors);
        return new Cursor(this, columnsNeeded.Any(c => c.Index == 0), features);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>Row r's label key (0: missing).</summary>
    public uint Label(long row) => LabelOverride(row) ?? (Unlabeled(row) ? 0u : (uint)(1 + row % Classes));

    /// <summary>Row r's values into <paramref name="values"/> (length: <see cref="Length"/>).</summary>
    public void Fill(long row, Span<float> values)
    {
        if (values.Length == 0)
            return;
        ulong state = (ulong)row * 0x9E3779B97F4A7C15UL + (ulong)(uint)_seed * 0xBF58476D1CE4E5B9UL + 1;
        int cls = (int)(row % Classes);
        float slope = (cls - (Classes - 1) / 2f) / values.Length;
        for (int t = 0; t < values.Length; t++)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values[t] = slope * t + ((state >> 40) / (float)(1 << 24) - 0.5f) * 0.2f;
        }
        values[0] = row;
        for (int t = 0; t < values.Length; t++)
        {
            if (ValueOverride(row, t) is { } v)
                values[t] = v;
        }
    }

    public int Length(long row) => _length(row);

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly GeneratedSequenceDataView _view;
        private readonly bool _label;
        private readonly bool _features;
        private long _position = -1;

        public Cursor(GeneratedSequenceDataView view, bool label, bool features)
        {
            _view = view;
            _label = label;
            _features = features;
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool MoveNext()
        {
            if (_position + 1 >= _view._rows)
            {
                _position = _view._rows;
                return false;
            }
            _position++;
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override bool IsColumnActive(DataViewSchema.Column column) => column.Index == 0 ? _label : _features;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index == 0 && _label)
            {
                ValueGetter<uint> label = (ref uint value) => value = _view.Label(_position);
                return (ValueGetter<TValue>)(Delegate)label;
            }
            if (column.Index == 1 && _features)
            {
                ValueGetter<VBuffer<float>> features = (ref VBuffer<float> value) =>
                {
                    int length = _view.Length(_position);
                    var editor = VBufferEditor.Create(ref value, length);
                    _view.Fill(_position, editor.Values);
                    value = editor.Commit();
                    Interlocked.Increment(ref _view._generated);
                };
                return (ValueGetter<TValue>)(Delegate)features;
            }
            throw new InvalidOperationException($"Column {column.Name} is not active.");
        }
    }
}
