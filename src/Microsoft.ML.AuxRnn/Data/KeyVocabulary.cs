namespace Microsoft.ML.AuxRnn.Data;

/// <summary>
/// The dense token vocabulary of a key-typed sequence column: the keys that occur in the training rows, numbered in
/// key order, so that the embedding and the auxiliary decoder's output layer have one row per key actually used
/// rather than one per key of the column's type (65,536 for <c>TokenizeIntoCharactersAsKeys</c>).
/// </summary>
/// <remarks>
/// Token 0 is the missing key 0 (and the padding of a batch), token 1 (<see cref="Unknown"/>) every key that did not
/// occur in training, and tokens 2.. the training keys in ascending order. The unknown token never occurs in the
/// training rows: the main network's embedding row for it is set to zeros before training and gets no gradient, so an
/// unseen key reads as an input carrying no information; for the decoder it is one more output class, never a target,
/// whose probability training drives down. Saved with the model (<see cref="Write"/>), applied when scoring and in the
/// ONNX export (<see cref="LookupTable"/>).
/// </remarks>
internal sealed class KeyVocabulary
{
    /// <summary>The token of the missing key 0, also the padding token.</summary>
    public const int Missing = 0;

    /// <summary>The token of keys that did not occur in the training rows.</summary>
    public const int Unknown = 1;

    /// <summary>The token of the smallest training key.</summary>
    public const int FirstKey = 2;

    /// <summary>Key counts up to this get a direct key → token table; larger ones a binary search of the keys.</summary>
    private const ulong MaxTable = 1 << 22;

    private readonly ulong[] _keys;
    private readonly int[]? _table;

    /// <param name="keys">The training keys, strictly ascending, each in 1..<paramref name="keyCount"/>.</param>
    /// <param name="keyCount">The column's key count.</param>
    public KeyVocabulary(ulong[] keys, ulong keyCount)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keyCount < 1 || keyCount >= SequenceInputType.MaxVocabulary)
            throw new ArgumentOutOfRangeException(nameof(keyCount), keyCount, $"must be 1..{SequenceInputType.MaxVocabulary - 1}");
        for (int i = 0; i < keys.Length; i++)
        {
            if (keys[i] < 1 || keys[i] > keyCount || (i > 0 && keys[i] <= keys[i - 1]))
                throw new ArgumentException($"Key {keys[i]} at {i} is out of order or outside 1..{keyCount}.", nameof(keys));
        }
        _keys = keys;
        KeyCount = keyCount;
        if (keyCount <= MaxTable)
        {
            _table = new int[keyCount + 1];
            Array.Fill(_table, Unknown);
            _table[0] = Missing;
            for (int i = 0; i < keys.Length; i++)
                _table[keys[i]] = FirstKey + i;
        }
    }

    /// <summary>The key count of the column the vocabulary was built for.</summary>
    public ulong KeyCount { get; }

    /// <summary>The training keys, ascending: key <c>Keys[i]</c> is token <c>i + 2</c>.</summary>
    public IReadOnlyList<ulong> Keys => _keys;

    /// <summary>Tokens: the training keys, the missing key and the unknown token.</summary>
    public int Size => _keys.Length + FirstKey;

    /// <summary>The token of key <paramref name="key"/> (0..<see cref="KeyCount"/>).</summary>
    public int Map(ulong key)
    {
        if (key == 0)
            return Missing;
        if (_table != null)
            return key < (ulong)_table.Length ? _table[key] : Unknown;
        int at = Array.BinarySearch(_keys, key);
        return at >= 0 ? FirstKey + at : Unknown;
    }

    /// <summary>The token of every key 0..<see cref="KeyCount"/>, for the ONNX graph's lookup (a Gather before the embedding's).</summary>
    public long[] LookupTable()
    {
        var table = new long[checked((long)KeyCount + 1)];
        Array.Fill(table, Unknown);
        table[0] = Missing;
        for (int i = 0; i < _keys.Length; i++)
            table[_keys[i]] = FirstKey + i;
        return table;
    }

    /// <summary>
    /// The vocabulary of the keys that occur in <paramref name="data"/>, whose tokens are still raw key values
    /// (key k read as token k, as a column is read before its vocabulary exists).
    /// </summary>
    public static KeyVocabulary FromRawKeys(SequenceDataset data, ulong keyCount)
    {
        var seen = new bool[checked((long)keyCount + 1)];
        for (int row = 0; row < data.Count; row++)
        {
            foreach (int key in data.Tokens(row))
                seen[key] = true;
        }
        var keys = new List<ulong>();
        for (ulong k = 1; k <= keyCount; k++)
        {
            if (seen[k])
                keys.Add(k);
        }
        return new KeyVocabulary(keys.ToArray(), keyCount);
    }

    // ---- persistence ----

    /// <summary>Writes <c>int32</c> number of keys N, then the N keys as <c>uint64</c>, ascending.</summary>
    public void Write(BinaryWriter writer)
    {
        writer.Write(_keys.Length);
        foreach (ulong key in _keys)
            writer.Write(key);
    }

    /// <summary>Writes what <see cref="ReadOrNull"/> reads as no vocabulary (key k is token k, as before dense vocabularies).</summary>
    public static void WriteNone(BinaryWriter writer) => writer.Write(-1);

    /// <summary>Reads and validates a vocabulary written by <see cref="Write"/> (null for <see cref="WriteNone"/>).</summary>
    public static KeyVocabulary? ReadOrNull(BinaryReader reader, ulong keyCount)
    {
        int count = reader.ReadInt32();
        if (count == -1)
            return null;
        if (count < 0 || (ulong)count > keyCount)
            throw new InvalidDataException($"The model's key vocabulary declares {count} keys for a column of {keyCount} keys; the file is corrupt.");
        if (reader.BaseStream.CanSeek && (long)count * sizeof(ulong) > reader.BaseStream.Length - reader.BaseStream.Position)
            throw new InvalidDataException($"The model's key vocabulary declares {count} keys, more than the file holds; the file is truncated or corrupt.");
        var keys = new ulong[count];
        for (int i = 0; i < count; i++)
        {
            keys[i] = reader.ReadUInt64();
            if (keys[i] < 1 || keys[i] > keyCount || (i > 0 && keys[i] <= keys[i - 1]))
                throw new InvalidDataException($"The model's key vocabulary holds key {keys[i]} at {i}, out of order or outside 1..{keyCount}; the file is corrupt.");
        }
        return new KeyVocabulary(keys, keyCount);
    }
}
