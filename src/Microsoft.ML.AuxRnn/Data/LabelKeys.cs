using System.Globalization;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Data;

/// <summary>
/// The label column's key type and its key values (the original labels, e.g. "Company" or 7), kept by the
/// transformer so that PredictedLabel has the label's type and <c>MapKeyToValue</c> restores the original values.
/// </summary>
internal sealed class LabelKeys
{
    private static readonly Type[] SupportedValueTypes =
    {
        typeof(ReadOnlyMemory<char>), typeof(bool), typeof(sbyte), typeof(byte), typeof(short), typeof(ushort),
        typeof(int), typeof(uint), typeof(long), typeof(ulong), typeof(float), typeof(double),
    };

    private LabelKeys(KeyDataViewType keyType, PrimitiveDataViewType? valueType, Array? values)
    {
        KeyType = keyType;
        ValueType = valueType;
        Values = values;
    }

    /// <summary>The label's key type: raw type and count (= number of classes).</summary>
    public KeyDataViewType KeyType { get; }

    public int ClassCount => checked((int)KeyType.Count);

    /// <summary>Item type of the key values; null when the label has none.</summary>
    public PrimitiveDataViewType? ValueType { get; }

    /// <summary>The key values (<c>T[]</c> of <see cref="ValueType"/>'s raw type), one per class; null when none.</summary>
    public Array? Values { get; }

    /// <summary>
    /// Reads the key type and key values of a label column. Key values of a type this library cannot save
    /// (other than text, bool or a number) are kept as their text.
    /// </summary>
    public static LabelKeys FromColumn(DataViewSchema.Column label)
    {
        var keyType = (KeyDataViewType)label.Type;
        var annotation = label.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
        if (annotation is not { } column || column.Type is not VectorDataViewType { ItemType: PrimitiveDataViewType itemType } vectorType
            || vectorType.Size != (int)keyType.Count)
            return new LabelKeys(keyType, null, null);

        var values = (Array)typeof(LabelKeys).GetMethod(nameof(ReadValues), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(itemType.RawType).Invoke(null, new object[] { label.Annotations, column })!;
        if (Array.IndexOf(SupportedValueTypes, itemType.RawType) < 0)
        {
            var text = new ReadOnlyMemory<char>[values.Length];
            for (int i = 0; i < text.Length; i++)
                text[i] = (Convert.ToString(values.GetValue(i), CultureInfo.InvariantCulture) ?? "").AsMemory();
            return new LabelKeys(keyType, TextDataViewType.Instance, text);
        }
        return new LabelKeys(keyType, itemType, values);
    }

    private static T[] ReadValues<T>(DataViewSchema.Annotations annotations, DataViewSchema.Column column)
    {
        VBuffer<T> buffer = default;
        annotations.GetValue(column.Name, ref buffer);
        var values = new T[buffer.Length];
        buffer.CopyTo(values);
        return values;
    }

    /// <summary>Annotations of the PredictedLabel column: the key values, when the label had them.</summary>
    public DataViewSchema.Annotations KeyValuesAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        AddKeyValues(builder, AnnotationUtils.Kinds.KeyValues);
        return builder.ToAnnotations();
    }

    /// <summary>Adds the key values under <paramref name="kind"/> (nothing when there are none).</summary>
    public void AddKeyValues(DataViewSchema.Annotations.Builder builder, string kind)
    {
        if (Values == null)
            return;
        typeof(LabelKeys).GetMethod(nameof(AddTyped), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .MakeGenericMethod(ValueType!.RawType).Invoke(this, new object[] { builder, kind });
    }

    private void AddTyped<T>(DataViewSchema.Annotations.Builder builder, string kind)
    {
        var values = (T[])Values!;
        ValueGetter<VBuffer<T>> getter = (ref VBuffer<T> dst) => new VBuffer<T>(values.Length, (T[])values.Clone()).CopyTo(ref dst);
        builder.Add(kind, new VectorDataViewType(ValueType!, values.Length), getter);
    }

    /// <summary>Class names for the Score column's slots: the key values as text, or "1".."K" without them.</summary>
    public ReadOnlyMemory<char>[] ClassNames()
    {
        var names = new ReadOnlyMemory<char>[ClassCount];
        for (int i = 0; i < names.Length; i++)
        {
            object? value = Values?.GetValue(i);
            names[i] = value switch
            {
                null => (i + 1).ToString(CultureInfo.InvariantCulture).AsMemory(),
                ReadOnlyMemory<char> text => text,
                float f => f.ToString("R", CultureInfo.InvariantCulture).AsMemory(),
                double d => d.ToString("R", CultureInfo.InvariantCulture).AsMemory(),
                _ => (Convert.ToString(value, CultureInfo.InvariantCulture) ?? "").AsMemory(),
            };
        }
        return names;
    }

    /// <summary>
    /// Why a label column met after training (a validation set's, or one that the data being scored carries) does not
    /// mean the same classes as the training label, or null when it does: it must be a key of the same count and,
    /// when both have key values, have the same values in the same order (a key mapping fitted on other data numbers
    /// the classes differently, and PredictedLabel's keys would then not be comparable with it).
    /// </summary>
    public string? Mismatch(DataViewSchema.Column column)
    {
        if (column.Type is not KeyDataViewType key)
            return $"it is {column.Type}, not a key";
        if (key.Count != KeyType.Count)
            return $"it has {key.Count:N0} classes (key type {key}) but the model was trained on {KeyType.Count:N0} (key type {KeyType})";
        var other = FromColumn(column);
        if (Values == null || other.Values == null)
            return null;
        var mine = ClassNames();
        var theirs = other.ClassNames();
        for (int i = 0; i < mine.Length; i++)
        {
            if (!mine[i].Span.SequenceEqual(theirs[i].Span))
                return $"its key {i + 1} is '{theirs[i]}' but the model's key {i + 1} is '{mine[i]}' (the label was keyed by another mapping)";
        }
        return null;
    }

    // ---- persistence ----

    public void Save(ModelSaveContext ctx)
    {
        // int: key raw size (1, 2, 4, 8); ulong: key count; int: value type code (0: none); values
        var writer = ctx.Writer;
        writer.Write(KeyRawSize(KeyType.RawType));
        writer.Write(KeyType.Count);
        int code = Values == null ? 0 : Array.IndexOf(SupportedValueTypes, ValueType!.RawType) + 1;
        writer.Write(code);
        if (Values == null)
            return;
        for (int i = 0; i < Values.Length; i++)
        {
            switch (Values.GetValue(i))
            {
                case ReadOnlyMemory<char> v: ctx.SaveString(v.ToString()); break;
                case bool v: writer.Write(v); break;
                case sbyte v: writer.Write(v); break;
                case byte v: writer.Write(v); break;
                case short v: writer.Write(v); break;
                case ushort v: writer.Write(v); break;
                case int v: writer.Write(v); break;
                case uint v: writer.Write(v); break;
                case long v: writer.Write(v); break;
                case ulong v: writer.Write(v); break;
                case float v: writer.Write(v); break;
                case double v: writer.Write(v); break;
                default: throw new InvalidOperationException($"Unexpected key value {Values.GetValue(i)}.");
            }
        }
    }

    /// <summary>Reads label keys written by <see cref="Save"/>; their count must be <paramref name="classCount"/>.</summary>
    public static LabelKeys Load(ModelLoadContext ctx, int classCount)
    {
        var reader = ctx.Reader;
        int rawSize = reader.ReadInt32();
        ulong count = reader.ReadUInt64();
        int code = reader.ReadInt32();
        Type? raw = rawSize switch { 1 => typeof(byte), 2 => typeof(ushort), 4 => typeof(uint), 8 => typeof(ulong), _ => null };
        if (raw == null || count != (ulong)classCount)
            throw new InvalidDataException($"The model's label type (key of {rawSize} bytes, {count} values) does not match its {classCount} classes; the file is corrupt.");
        if (code < 0 || code > SupportedValueTypes.Length)
            throw new InvalidDataException($"The model's label values have an unknown type code {code}; the file is corrupt or from a newer version.");

        var keyType = new KeyDataViewType(raw, count);
        if (code == 0)
            return new LabelKeys(keyType, null, null);

        Type valueRaw = SupportedValueTypes[code - 1];
        var values = Array.CreateInstance(valueRaw, classCount);
        for (int i = 0; i < classCount; i++)
        {
            object value = Type.GetTypeCode(valueRaw) switch
            {
                TypeCode.Boolean => (object)reader.ReadBoolean(),
                TypeCode.SByte => (object)reader.ReadSByte(),
                TypeCode.Byte => (object)reader.ReadByte(),
                TypeCode.Int16 => (object)reader.ReadInt16(),
                TypeCode.UInt16 => (object)reader.ReadUInt16(),
                TypeCode.Int32 => (object)reader.ReadInt32(),
                TypeCode.UInt32 => (object)reader.ReadUInt32(),
                TypeCode.Int64 => (object)reader.ReadInt64(),
                TypeCode.UInt64 => (object)reader.ReadUInt64(),
                TypeCode.Single => (object)reader.ReadSingle(),
                TypeCode.Double => (object)reader.ReadDouble(),
                _ => ctx.LoadString().AsMemory(), // text
            };
            values.SetValue(value, i);
        }
        return new LabelKeys(keyType, TypeOf(valueRaw), values);
    }

    private static PrimitiveDataViewType TypeOf(Type raw) =>
        raw == typeof(ReadOnlyMemory<char>) ? TextDataViewType.Instance
        : raw == typeof(bool) ? BooleanDataViewType.Instance
        : raw == typeof(sbyte) ? NumberDataViewType.SByte
        : raw == typeof(byte) ? NumberDataViewType.Byte
        : raw == typeof(short) ? NumberDataViewType.Int16
        : raw == typeof(ushort) ? NumberDataViewType.UInt16
        : raw == typeof(int) ? NumberDataViewType.Int32
        : raw == typeof(uint) ? NumberDataViewType.UInt32
        : raw == typeof(long) ? NumberDataViewType.Int64
        : raw == typeof(ulong) ? NumberDataViewType.UInt64
        : raw == typeof(float) ? NumberDataViewType.Single
        : NumberDataViewType.Double;

    private static int KeyRawSize(Type raw) =>
        raw == typeof(byte) ? 1 : raw == typeof(ushort) ? 2 : raw == typeof(uint) ? 4 : 8;
}
