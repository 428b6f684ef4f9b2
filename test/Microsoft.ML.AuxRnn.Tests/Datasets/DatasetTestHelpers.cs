using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Datasets;

/// <summary>Reads loader output back for assertions.</summary>
internal static class ViewReader
{
    public static List<(uint Label, float[] Features)> LabelsAndFeatures(IDataView view, int max = int.MaxValue)
    {
        var rows = new List<(uint, float[])>();
        var label = view.Schema["Label"];
        var features = view.Schema["Features"];
        using var cursor = view.GetRowCursor(new[] { label, features });
        var getLabel = cursor.GetGetter<uint>(label);
        var getFeatures = cursor.GetGetter<VBuffer<float>>(features);
        uint l = 0;
        var f = default(VBuffer<float>);
        while (rows.Count < max && cursor.MoveNext())
        {
            getLabel(ref l);
            getFeatures(ref f);
            rows.Add((l, f.DenseValues().ToArray()));
        }
        return rows;
    }

    public static string[] KeyNames(DataViewSchema.Column column)
    {
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        column.GetKeyValues(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    /// <summary>A float-vector column, each row copied (getters reuse their buffers).</summary>
    public static List<float[]> Vectors(IDataView view, string name)
    {
        var column = view.Schema[name];
        var result = new List<float[]>();
        using var cursor = view.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        var value = default(VBuffer<float>);
        while (cursor.MoveNext())
        {
            getter(ref value);
            result.Add(value.DenseValues().ToArray());
        }
        return result;
    }

    /// <summary>A scalar column (for vectors use <see cref="Vectors"/>: getters reuse their buffers).</summary>
    public static List<T> Column<T>(IDataView view, string name)
    {
        var column = view.Schema[name];
        var result = new List<T>();
        using var cursor = view.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<T>(column);
        T value = default!;
        while (cursor.MoveNext())
        {
            getter(ref value);
            result.Add(value);
        }
        return result;
    }

    /// <summary>A temporary folder removed on dispose.</summary>
    public sealed class TempFolder : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "auxrnn-test-" + Guid.NewGuid().ToString("N"));

        public TempFolder() => Directory.CreateDirectory(Path);

        public string File(string name) => System.IO.Path.Combine(Path, name);

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
