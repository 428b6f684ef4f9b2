using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.AuxRnn.Data;

/// <summary>How the values of a sequence column become the network's input.</summary>
internal enum SequenceInputKind
{
    /// <summary>A vector of <see cref="float"/>, cut into steps of StepSize values, projected linearly.</summary>
    Continuous = 0,

    /// <summary>A vector of <see cref="float"/> holding integer levels 0..Levels−1, each one token.</summary>
    Levels = 1,

    /// <summary>
    /// A vector of keys, each one token: through the model's <see cref="KeyVocabulary"/> (the keys seen in training,
    /// plus the missing key 0 and one token for unseen keys), or, in models saved before dense vocabularies, key
    /// value k → token k (0, the missing key, being token 0).
    /// </summary>
    Keys = 2,
}

/// <summary>
/// The sequence column's type as the model saw it at training: fixed by <see cref="FromColumn"/>, saved with the
/// model, and checked against the scoring-time column by <see cref="CheckColumn"/>.
/// </summary>
internal sealed record SequenceInputType(SequenceInputKind Kind, int StepSize, int Levels, Type? KeyRawType, ulong KeyCount, int VectorSize)
{
    /// <summary>The largest token vocabulary a model may have (also what a loaded file may claim).</summary>
    public const int MaxVocabulary = 16_777_215;

    /// <summary>The largest step size a loaded file may claim.</summary>
    public const int MaxStepSize = 1_000_000;

    public bool Discrete => Kind != SequenceInputKind.Continuous;

    /// <summary>
    /// Keys only: the dense vocabulary of the keys seen in training, which maps keys to tokens. Null while Fit reads
    /// the training rows (their tokens are then the raw key values) and in models saved before dense vocabularies.
    /// Not part of <see cref="Write"/>: the model saves it after its other settings.
    /// </summary>
    public KeyVocabulary? KeyMap { get; init; }

    /// <summary>
    /// Tokens the embedding needs: for keys the <see cref="KeyMap"/>'s size, or without one the key count + 1 (key
    /// value k is token k, 0 being the missing key); the number of levels for levels; 0 for continuous input.
    /// </summary>
    public int Vocabulary => Kind switch
    {
        SequenceInputKind.Keys => KeyMap?.Size ?? checked((int)KeyCount + 1),
        SequenceInputKind.Levels => Levels,
        _ => 0,
    };

    /// <summary>Values per step the network reads: 1 for tokens.</summary>
    public int NetworkStepSize => Discrete ? 1 : StepSize;

    public SequenceDataset NewDataset() => Discrete ? SequenceDataset.Discrete(Vocabulary, KeyMap) : SequenceDataset.Continuous(StepSize);

    /// <summary>What a compatible column looks like, for error messages.</summary>
    public string Describe()
    {
        string size = VectorSize > 0 ? VectorSize.ToString() : "variable size";
        return Kind == SequenceInputKind.Keys
            ? $"vector ({size}) of Key<{KeyRawType!.Name}, 0-{KeyCount - 1}>"
            : $"vector ({size}) of Single" + (Kind == SequenceInputKind.Levels ? $" holding integer levels 0..{Levels - 1}" : $", {StepSize} value(s) per step");
    }

    /// <summary>
    /// Derives the input type from the training column, or throws an exception naming the column when it cannot
    /// be a sequence.
    /// </summary>
    public static SequenceInputType FromColumn(IExceptionContext ectx, DataViewSchema.Column column, AuxLstmClassifierOptions options)
    {
        string name = column.Name;
        if (column.Type is not VectorDataViewType vector)
            throw ectx.ExceptSchemaMismatch(nameof(DataViewSchema), "sequence", name, "vector of Single or of keys", column.Type.ToString());

        if (vector.ItemType is KeyDataViewType key)
        {
            if (key.Count + 1 > MaxVocabulary)
                throw ectx.ExceptParam(nameof(options.SequenceColumnName),
                    $"Sequence column '{name}' has {key.Count:N0} keys; at most {MaxVocabulary - 1:N0} are supported.");
            return new SequenceInputType(SequenceInputKind.Keys, 1, 0, key.RawType, key.Count, vector.Size);
        }

        if (vector.ItemType != NumberDataViewType.Single)
            throw ectx.ExceptSchemaMismatch(nameof(DataViewSchema), "sequence", name, "vector of Single or of keys", column.Type.ToString());

        if (vector.Size > 0 && vector.Size % options.StepSize != 0)
            throw ectx.ExceptParam(nameof(options.StepSize),
                $"{nameof(AuxLstmClassifierOptions)}.{nameof(options.StepSize)} = {options.StepSize} does not divide the {vector.Size} values of sequence column '{name}'.");
        if (options.InputLevels > MaxVocabulary)
            throw ectx.ExceptParam(nameof(options.InputLevels),
                $"{nameof(AuxLstmClassifierOptions)}.{nameof(options.InputLevels)} = {options.InputLevels:N0} is more than the {MaxVocabulary:N0} tokens supported.");
        return options.InputLevels > 0
            ? new SequenceInputType(SequenceInputKind.Levels, 1, options.InputLevels, null, 0, vector.Size)
            : new SequenceInputType(SequenceInputKind.Continuous, options.StepSize, 0, null, 0, vector.Size);
    }

    /// <summary>
    /// Finds the sequence column in a scoring-time schema and checks that it has the training-time type
    /// (a float vector of another known size, another key type or a scalar are all rejected, naming the column).
    /// </summary>
    public DataViewSchema.Column CheckColumn(IExceptionContext ectx, DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name);
        if (column is not { } col)
            throw ectx.ExceptSchemaMismatch(nameof(schema), "sequence", name);

        bool ok = col.Type is VectorDataViewType vector && (Kind == SequenceInputKind.Keys
            ? vector.ItemType is KeyDataViewType key && key.RawType == KeyRawType && key.Count == KeyCount
            : vector.ItemType == NumberDataViewType.Single && (VectorSize == 0 || vector.Size == 0 || vector.Size == VectorSize));
        if (!ok)
            throw ectx.ExceptSchemaMismatch(nameof(schema), "sequence", name, Describe() + " (as at training)", col.Type.ToString());
        if (col.Type is VectorDataViewType { Size: > 0 } sized && sized.Size % StepSize != 0)
            throw ectx.ExceptSchemaMismatch(nameof(schema), "sequence", name, $"a multiple of {StepSize} values", col.Type.ToString());
        return col;
    }

    // ---- persistence ----

    public void Write(BinaryWriter writer)
    {
        writer.Write((int)Kind);
        writer.Write(StepSize);
        writer.Write(Levels);
        writer.Write(KeyRawType == null ? 0 : KeyRawTypeSize(KeyRawType));
        writer.Write(KeyCount);
        writer.Write(VectorSize);
    }

    /// <summary>Reads and validates an input type written by <see cref="Write"/>.</summary>
    public static SequenceInputType Read(BinaryReader reader)
    {
        int kind = reader.ReadInt32();
        int stepSize = reader.ReadInt32();
        int levels = reader.ReadInt32();
        int keyRawSize = reader.ReadInt32();
        ulong keyCount = reader.ReadUInt64();
        int vectorSize = reader.ReadInt32();

        static InvalidDataException Bad(string what) =>
            new($"The model's sequence input type is invalid ({what}); the file is corrupt or not an AuxLstm model.");

        if (!Enum.IsDefined((SequenceInputKind)kind))
            throw Bad($"unknown input kind {kind}");
        if (stepSize < 1 || stepSize > MaxStepSize)
            throw Bad($"step size {stepSize}");
        if (vectorSize < 0 || (vectorSize > 0 && vectorSize % stepSize != 0))
            throw Bad($"vector size {vectorSize}");

        switch ((SequenceInputKind)kind)
        {
            case SequenceInputKind.Continuous:
                if (levels != 0 || keyRawSize != 0 || keyCount != 0)
                    throw Bad("continuous input with levels or keys");
                return new SequenceInputType(SequenceInputKind.Continuous, stepSize, 0, null, 0, vectorSize);
            case SequenceInputKind.Levels:
                if (stepSize != 1 || levels < 1 || levels > MaxVocabulary || keyRawSize != 0 || keyCount != 0)
                    throw Bad($"{levels} levels with step size {stepSize}");
                return new SequenceInputType(SequenceInputKind.Levels, 1, levels, null, 0, vectorSize);
            default:
                Type? raw = keyRawSize switch { 1 => typeof(byte), 2 => typeof(ushort), 4 => typeof(uint), 8 => typeof(ulong), _ => null };
                if (raw == null || stepSize != 1 || levels != 0 || keyCount < 1 || keyCount >= MaxVocabulary)
                    throw Bad($"key input with {keyCount} keys of {keyRawSize} bytes");
                return new SequenceInputType(SequenceInputKind.Keys, 1, 0, raw, keyCount, vectorSize);
        }
    }

    private static int KeyRawTypeSize(Type raw) =>
        raw == typeof(byte) ? 1 : raw == typeof(ushort) ? 2 : raw == typeof(uint) ? 4 : raw == typeof(ulong) ? 8
        : throw new InvalidOperationException($"Unexpected key type {raw}.");
}
