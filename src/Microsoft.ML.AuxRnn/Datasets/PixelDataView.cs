using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Datasets;

/// <summary>
/// Images held in memory as bytes (one row of <see cref="_rowLength"/> bytes each, plus a label byte), served as an
/// <see cref="IDataView"/> with a key column "Label" (with the class names as <c>KeyValues</c>) and a known-size
/// vector of <see cref="float"/> "Features" (pixel intensities 0..255). Slot j of "Features" is byte
/// <c>_slotSource[j]</c> of the row, which is how a loader turns planar colours into interleaved steps and applies
/// a pixel permutation without copying the data.
/// </summary>
internal sealed class PixelDataView : IDataView
{
    private readonly byte[] _labels;
    private readonly byte[] _pixels;
    private readonly int _rowLength;
    private readonly int[] _slotSource;

    public PixelDataView(byte[] labels, byte[] pixels, int rowLength, int[] slotSource, IReadOnlyList<string> classNames)
    {
        if (pixels.Length != (long)labels.Length * rowLength)
            throw new ArgumentException($"{pixels.Length} pixel bytes are not {labels.Length} rows of {rowLength}.", nameof(pixels));
        _labels = labels;
        _pixels = pixels;
        _rowLength = rowLength;
        _slotSource = slotSource;

        var keyValues = new VBuffer<ReadOnlyMemory<char>>(classNames.Count, classNames.Select(n => n.AsMemory()).ToArray());
        var labelAnnotations = new DataViewSchema.Annotations.Builder();
        labelAnnotations.AddKeyValues(classNames.Count, TextDataViewType.Instance, (ref VBuffer<ReadOnlyMemory<char>> dst) => keyValues.CopyTo(ref dst));
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(DefaultColumnNames.Label, new KeyDataViewType(typeof(uint), classNames.Count), labelAnnotations.ToAnnotations());
        builder.AddColumn(DefaultColumnNames.Features, new VectorDataViewType(NumberDataViewType.Single, slotSource.Length));
        Schema = builder.ToSchema();
    }

    public bool CanShuffle => true;

    public DataViewSchema Schema { get; }

    public long? GetRowCount() => _labels.Length;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        int[]? order = null;
        if (rand != null)
        {
            order = Enumerable.Range(0, _labels.Length).ToArray();
            rand.Shuffle(order);
        }
        return new Cursor(this, columnsNeeded.Select(c => c.Index).ToHashSet(), order);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly PixelDataView _parent;
        private readonly HashSet<int> _active;
        private readonly int[]? _order;
        private long _position = -1;
        private int _row = -1;

        public Cursor(PixelDataView parent, HashSet<int> active, int[]? order)
        {
            _parent = parent;
            _active = active;
            _order = order;
        }

        public override DataViewSchema Schema => _parent.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext()
        {
            if (_position + 1 >= _parent._labels.Length)
            {
                _row = -1;
                return false;
            }
            _position++;
            _row = _order == null ? (int)_position : _order[_position];
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter()
            => (ref DataViewRowId id) =>
            {
                EnsurePositioned();
                id = new DataViewRowId((ulong)_row, 0);
            };

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was made.");
            Delegate getter = column.Index switch
            {
                0 => (ValueGetter<uint>)GetLabel,
                1 => (ValueGetter<VBuffer<float>>)GetFeatures,
                _ => throw new ArgumentOutOfRangeException(nameof(column)),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is of type {column.Type}, not {typeof(TValue).Name}.");
        }

        private void GetLabel(ref uint value)
        {
            EnsurePositioned();
            value = (uint)_parent._labels[_row] + 1; // keys are 1-based; 0 is missing
        }

        private void GetFeatures(ref VBuffer<float> value)
        {
            EnsurePositioned();
            int[] source = _parent._slotSource;
            var editor = VBufferEditor.Create(ref value, source.Length);
            ReadOnlySpan<byte> row = _parent._pixels.AsSpan(_row * _parent._rowLength, _parent._rowLength);
            Span<float> values = editor.Values;
            for (int j = 0; j < source.Length; j++)
                values[j] = row[source[j]];
            value = editor.Commit();
        }

        private void EnsurePositioned()
        {
            if (_row < 0)
                throw new InvalidOperationException("The cursor is not on a row: call MoveNext first.");
        }
    }
}
