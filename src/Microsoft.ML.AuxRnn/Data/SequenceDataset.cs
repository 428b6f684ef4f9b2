namespace Microsoft.ML.AuxRnn.Data;

/// <summary>
/// Sequences held in memory for training or scoring: each row is either tokens (discrete input) or
/// <see cref="StepSize"/> float values per step (continuous input), with an optional 0-based label.
/// </summary>
internal sealed class SequenceDataset : ITrainingRows
{
    private readonly List<int[]>? _tokens;
    private readonly List<float[]>? _values;
    private readonly List<int> _labels = new();

    private SequenceDataset(bool discrete, int vocabulary, int stepSize, KeyVocabulary? keyMap = null)
    {
        IsDiscrete = discrete;
        KeyMap = keyMap;
        Vocabulary = vocabulary;
        StepSize = stepSize;
        if (discrete)
            _tokens = new List<int[]>();
        else
            _values = new List<float[]>();
    }

    /// <summary>An empty set of token sequences over a vocabulary of <paramref name="vocabulary"/> tokens (keys mapped by <paramref name="keyMap"/>, when given).</summary>
    public static SequenceDataset Discrete(int vocabulary, KeyVocabulary? keyMap = null) =>
        keyMap is not null && keyMap.Size != vocabulary
            ? throw new ArgumentException($"The key vocabulary has {keyMap.Size} tokens, not {vocabulary}.", nameof(keyMap))
            : new(true, vocabulary, 1, keyMap);

    /// <summary>An empty set of float sequences of <paramref name="stepSize"/> values per step.</summary>
    public static SequenceDataset Continuous(int stepSize) => new(false, 0, stepSize);

    public bool IsDiscrete { get; }

    /// <summary>The vocabulary the rows' keys were mapped through (key input), or null (raw key values, levels or values).</summary>
    public KeyVocabulary? KeyMap { get; }

    /// <summary>
    /// This data set read as raw key values (key k as token k), its tokens mapped through <paramref name="map"/>:
    /// a new data set over the same rows and labels (the token arrays are mapped in place, so this one must not be used after).
    /// </summary>
    public SequenceDataset MapKeys(KeyVocabulary map)
    {
        if (!IsDiscrete || KeyMap is not null)
            throw new InvalidOperationException("Only a data set of raw key values can be mapped to a key vocabulary.");
        var mapped = new SequenceDataset(true, map.Size, 1, map);
        for (int row = 0; row < Count; row++)
        {
            int[] tokens = _tokens![row];
            for (int t = 0; t < tokens.Length; t++)
                tokens[t] = map.Map((ulong)tokens[t]);
            mapped.AddTokens(tokens, _labels[row]);
        }
        return mapped;
    }

    /// <summary>Number of distinct tokens (discrete input only).</summary>
    public int Vocabulary { get; }

    /// <summary>Values per step: 1 for tokens.</summary>
    public int StepSize { get; }

    public int Count => _labels.Count;

    /// <summary>0-based labels; -1 where a row has none.</summary>
    public IReadOnlyList<int> Labels => _labels;

    /// <summary>Steps of row <paramref name="row"/>.</summary>
    public int Length(int row) => IsDiscrete ? _tokens![row].Length : _values![row].Length / StepSize;

    public int MaxLength
    {
        get
        {
            int max = 0;
            for (int i = 0; i < Count; i++)
                max = Math.Max(max, Length(i));
            return max;
        }
    }

    /// <summary>
    /// A short hash of the rows (labels and sequences, in order): two data sets with the same content have the same
    /// one. Checkpoints are kept per training set under it, so the folds of a cross-validation never share one.
    /// <see cref="StreamedSequenceRows.ContentHash"/> gives the same hash for the same rows.
    /// </summary>
    public string ContentHash()
    {
        using var hash = new SequenceContentHash(IsDiscrete, Vocabulary, StepSize, Count);
        hash.AddLabels(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_labels));
        if (KeyMap is { } map)
        {
            // Two texts of other characters can have the same dense tokens: the keys behind them tell the runs apart.
            hash.AddKeys(map.Keys.ToArray());
        }
        for (int row = 0; row < Count; row++)
        {
            if (IsDiscrete)
                hash.AddRow(_tokens![row]);
            else
                hash.AddRow(_values![row]);
        }
        return hash.Finish();
    }

    /// <summary>The standardisation sums of the float sequences, row by row in order (null for tokens).</summary>
    public StandardizationStats? Standardization()
    {
        if (IsDiscrete)
            return null;
        var stats = new StandardizationStats(StepSize);
        for (int i = 0; i < Count; i++)
            stats.Add(_values![i]);
        return stats;
    }

    /// <summary>
    /// One epoch's mini-batches: every row once, in an order shuffled with <paramref name="rng"/> (a whole permutation
    /// drawn before the first batch). <paramref name="streamSeed"/> is not used: the rows are all in memory.
    /// </summary>
    public IEnumerable<SequenceBatch> Epoch(int batchSize, Random rng, long streamSeed)
    {
        var order = new int[Count];
        for (int i = 0; i < order.Length; i++)
            order[i] = i;
        rng.Shuffle(order);
        for (int start = 0; start < order.Length; start += batchSize)
            yield return GetBatch(order.AsSpan(start, Math.Min(batchSize, order.Length - start)));
    }

    public int[] Tokens(int row) => _tokens![row];

    public float[] Values(int row) => _values![row];

    public void AddTokens(int[] tokens, int label = -1)
    {
        if (!IsDiscrete)
            throw new InvalidOperationException("This data set holds float sequences.");
        _tokens!.Add(tokens);
        _labels.Add(label);
    }

    public void AddValues(float[] values, int label = -1)
    {
        if (IsDiscrete)
            throw new InvalidOperationException("This data set holds token sequences.");
        if (values.Length % StepSize != 0)
            throw new ArgumentException($"{values.Length} values are not a whole number of steps of {StepSize}.", nameof(values));
        _values!.Add(values);
        _labels.Add(label);
    }

    /// <summary>Pads the given rows into one batch (padding: token 0 or value 0, masked by <see cref="SequenceBatch.Lengths"/>).</summary>
    public SequenceBatch GetBatch(ReadOnlySpan<int> rows)
    {
        int count = rows.Length;
        var lengths = new int[count];
        var labels = new long[count];
        int maxLength = 0;
        for (int i = 0; i < count; i++)
        {
            lengths[i] = Length(rows[i]);
            labels[i] = _labels[rows[i]];
            maxLength = Math.Max(maxLength, lengths[i]);
        }

        if (IsDiscrete)
        {
            var tokens = new long[count * maxLength];
            for (int i = 0; i < count; i++)
            {
                int[] row = _tokens![rows[i]];
                for (int t = 0; t < row.Length; t++)
                    tokens[i * maxLength + t] = row[t];
            }
            return new SequenceBatch(count, maxLength, 1, lengths, tokens, null, labels);
        }

        var values = new float[count * maxLength * StepSize];
        for (int i = 0; i < count; i++)
            _values![rows[i]].CopyTo(values, i * maxLength * StepSize);
        return new SequenceBatch(count, maxLength, StepSize, lengths, null, values, labels);
    }
}

/// <summary>A padded mini-batch in row-major (batch, step[, value]) layout.</summary>
internal sealed record SequenceBatch(int Count, int MaxLength, int StepSize, int[] Lengths, long[]? Tokens, float[]? Values, long[] Labels)
{
    public bool IsDiscrete => Tokens != null;
}
