using Microsoft.ML.Data;
using Microsoft.ML.Model.OnnxConverter;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.AuxRnn.Data;

/// <summary>
/// The output of <see cref="AuxLstmClassifierTransformer.Transform"/>: the input's columns plus PredictedLabel and
/// Score, scored lazily in mini-batches. A cursor that needs an output column reads the sequences of the next
/// ScoringBatchSize rows with a second cursor over the input, scores them in one forward pass, and serves the
/// cached scores as it advances (checking that both cursors stand on the same row). Cursors that need no output
/// column pass straight through to the input.
/// </summary>
/// <remarks>
/// It is an <see cref="IDataTransform"/> over its source, saved and exported to ONNX as the row-to-row view it
/// batches, so ML.NET's <c>ConvertToOnnx</c> walks back through it like through any other transform.
/// </remarks>
internal sealed class BatchScoringDataView : ITransformCanSaveOnnx
{
    private readonly IHost _host;
    private readonly AuxLstmClassifierTransformer _parent;
    private readonly IDataView _source;
    private readonly IDataView _perRow;
    private readonly DataViewSchema.Column _sequence;
    private readonly int _predictedIndex;
    private readonly int _scoreIndex;
    private readonly int _embeddingIndex;

    /// <summary>For each output column, the input column it passes through (-1 for PredictedLabel and Score).</summary>
    private readonly int[] _inputIndex;

    /// <summary>Wraps <paramref name="source"/>; <paramref name="perRow"/> is the row-to-row view over the same source
    /// (it fixes the schema and serves cursors that need no score).</summary>
    public BatchScoringDataView(IHost host, AuxLstmClassifierTransformer parent, IDataView source, IDataView perRow)
    {
        _host = host;
        _parent = parent;
        _source = source;
        _perRow = perRow;
        _sequence = parent.InputType.CheckColumn(host, source.Schema, parent.SequenceColumnName);

        // The row-to-row view keeps every input column, in order, and adds the two outputs: at the end, or right
        // after a same-named input column, which they then hide (ML.NET's column bindings). Map the rest back.
        var schema = perRow.Schema;
        _predictedIndex = schema[parent.PredictedLabelColumnName].Index;
        _scoreIndex = schema[parent.ScoreColumnName].Index;
        _embeddingIndex = parent.EmbeddingColumnName is { } embedding ? schema[embedding].Index : -1;
        _inputIndex = new int[schema.Count];
        int next = 0;
        for (int i = 0; i < schema.Count; i++)
        {
            if (i == _predictedIndex || i == _scoreIndex || i == _embeddingIndex)
            {
                _inputIndex[i] = -1;
                continue;
            }
            host.Check(next < source.Schema.Count && schema[i].Name == source.Schema[next].Name && schema[i].Type.Equals(source.Schema[next].Type),
                "Unexpected output schema.");
            _inputIndex[i] = next++;
        }
        host.Check(next == source.Schema.Count, "Unexpected output schema.");
    }

    public bool CanShuffle => false;

    /// <summary>The data being scored.</summary>
    public IDataView Source => _source;

    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)_perRow).Save(ctx);

    bool ICanSaveOnnx.CanSaveOnnx(OnnxContext ctx) => _perRow is ICanSaveOnnx onnx && onnx.CanSaveOnnx(ctx);

    void ISaveAsOnnx.SaveAsOnnx(OnnxContext ctx) => ((ISaveAsOnnx)_perRow).SaveAsOnnx(ctx);

    public DataViewSchema Schema => _perRow.Schema;

    public long? GetRowCount() => _source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        _host.CheckValue(columnsNeeded, nameof(columnsNeeded));
        var needed = new HashSet<int>(columnsNeeded.Select(c => c.Index));
        if (!needed.Contains(_predictedIndex) && !needed.Contains(_scoreIndex) && !needed.Contains(_embeddingIndex))
            return _perRow.GetRowCursor(columnsNeeded, rand);

        var inputColumns = needed.Where(i => i >= 0 && i < _inputIndex.Length && _inputIndex[i] >= 0).Select(i => _source.Schema[_inputIndex[i]]).ToArray();
        return new Cursor(this, needed, _source.GetRowCursor(inputColumns), _source.GetRowCursor(new[] { _sequence }));
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchScoringDataView _view;
        private readonly HashSet<int> _active;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor _ahead;
        private readonly SequenceRowReader _aheadReader;
        private readonly ValueGetter<DataViewRowId> _mainId;
        private readonly ValueGetter<DataViewRowId> _aheadId;
        private readonly Delegate[] _outputGetters;
        private readonly int _classes;
        private readonly int _embeddingSize;
        private readonly bool _withEmbeddings;
        private readonly int _batchSize;
        private DataViewRowId[] _ids = Array.Empty<DataViewRowId>();
        private float[] _scores = Array.Empty<float>();
        private float[]? _embeddings;
        private int _count;
        private int _index = -1;
        private bool _disposed;

        public Cursor(BatchScoringDataView view, HashSet<int> active, DataViewRowCursor main, DataViewRowCursor ahead)
        {
            _view = view;
            _active = active;
            _main = main;
            _ahead = ahead;
            _aheadReader = new SequenceRowReader(ahead, ahead.Schema[view._sequence.Index], view._parent.InputType);
            _mainId = main.GetIdGetter();
            _aheadId = ahead.GetIdGetter();
            _classes = view._parent.ClassCount;
            _embeddingSize = view._parent.EmbeddingSize;
            _withEmbeddings = active.Contains(view._embeddingIndex);
            _batchSize = view._parent.ScoringBatchSize;
            _outputGetters = view._parent.MakeOutputGetters(
                i => active.Contains(i switch { 0 => view._predictedIndex, 1 => view._scoreIndex, _ => view._embeddingIndex }),
                () => _scores.AsSpan(_index * _classes, _classes),
                () => _embeddings.AsSpan(_index * _embeddingSize, _embeddingSize));
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _main.Position;

        public override long Batch => _main.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column))
                throw _view._host.Except($"Column '{column.Name}' was not requested from this cursor.");
            if (_view._inputIndex[column.Index] is int input and >= 0)
                return _main.GetGetter<TValue>(_view._source.Schema[input]);

            var getter = column.Index == _view._predictedIndex ? _outputGetters[0]
                : column.Index == _view._scoreIndex ? _outputGetters[1]
                : _outputGetters[2];
            return getter as ValueGetter<TValue>
                ?? throw _view._host.Except($"Column '{column.Name}' is of type {column.Type}, not {typeof(TValue).Name}.");
        }

        public override bool MoveNext()
        {
            if (_disposed || !_main.MoveNext())
                return false;
            if (++_index >= _count)
                ScoreNextBatch();

            DataViewRowId id = default;
            _mainId(ref id);
            if (!id.Equals(_ids[_index]))
                throw _view._host.Except("The input data gave two cursors different rows (row {0}); AuxLstmClassifier's batched scoring needs a data view that repeats its rows in the same order.", Position);
            return true;
        }

        private void ScoreNextBatch()
        {
            var rows = _view._parent.InputType.NewDataset();
            if (_ids.Length < _batchSize)
                _ids = new DataViewRowId[_batchSize];
            _count = 0;
            while (_count < _batchSize && _ahead.MoveNext())
            {
                _aheadId(ref _ids[_count]);
                _aheadReader.AddTo(rows, -1);
                _count++;
            }
            if (_count == 0)
                throw _view._host.Except("The input data gave two cursors different numbers of rows; AuxLstmClassifier's batched scoring needs a data view that repeats its rows.");
            (_scores, _embeddings) = _view._parent.Score(rows, _withEmbeddings);
            _index = 0;
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed)
                return;
            if (disposing)
            {
                _main.Dispose();
                _ahead.Dispose();
            }
            _disposed = true;
            base.Dispose(disposing);
        }
    }
}
