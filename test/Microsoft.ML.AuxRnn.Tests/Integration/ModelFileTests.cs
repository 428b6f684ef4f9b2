using System.IO.Compression;
using System.Text;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// Damaged, foreign and future model files fail to load with a clear <see cref="InvalidDataException"/> or
/// <see cref="FormatException"/> (ML.NET's loader wraps it in a TargetInvocationException), before any large allocation.
/// </summary>
public sealed class ModelFileTests : IDisposable
{
    private const string Signature = "AUXLSTMC";
    private readonly string _folder = Directory.CreateTempSubdirectory("auxrnn-modelfiles-").FullName;
    private readonly string _good;
    private readonly AuxLstmClassifierTransformer _classifier;

    public ModelFileTests()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(16, 3, 6));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions())).Fit(data);
        _classifier = model.LastTransformer;
        _good = Path.Combine(_folder, "good.zip");
        ml.Model.Save(model, data.Schema, _good);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void TheUndamagedFileLoads()
    {
        new MLContext().Model.Load(_good, out _).Should().NotBeNull();
        ModelZip.Entries(_good).Keys.Should().Contain(k => k.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal));
    }

    [Fact]
    public void ATruncatedOrForeignFileIsRejected()
    {
        byte[] bytes = File.ReadAllBytes(_good);
        string truncated = Write("truncated.zip", bytes.AsSpan(0, bytes.Length / 2).ToArray());
        Find<InvalidDataException>(LoadFailure(truncated));

        string text = Write("notes.zip", Encoding.UTF8.GetBytes("not a model"));
        Find<InvalidDataException>(LoadFailure(text));
    }

    [Fact]
    public void AnotherComponentsFileIsRejected()
    {
        string path = EditModelKey("foreign.zip", key => Encoding.ASCII.GetBytes("FOREIGNX").CopyTo(key, 0x40));
        Find<FormatException>(LoadFailure(path)).Message.Should().Contain("Unknown file type");
    }

    [Fact]
    public void AFutureVersionIsRejected()
    {
        string path = EditModelKey("future.zip", key =>
        {
            BitConverter.GetBytes(0x00020001u).CopyTo(key, 0x48); // version written
            BitConverter.GetBytes(0x00020001u).CopyTo(key, 0x4C); // version readable
        });
        Find<FormatException>(LoadFailure(path)).Message.Should().Contain("too new");
    }

    [Fact]
    public void AnUnknownLoaderIsRejected()
    {
        string path = EditModelKey("loader.zip", key => Encoding.ASCII.GetBytes("AuxLstmClassifierX").CopyTo(key, 0x50));
        Find<FormatException>(LoadFailure(path));
    }

    [Fact]
    public void AbsurdNetworkSizesAreRejectedBeforeAllocating()
    {
        string hidden = ReplaceShape("hidden.zip", _classifier.Shape with { HiddenSize = 1 << 30 });
        string classes = ReplaceShape("classes.zip", _classifier.Shape with { ClassCount = int.MaxValue });
        long allocated = GC.GetTotalAllocatedBytes();

        Find<InvalidDataException>(LoadFailure(hidden)).Message.Should().Contain("hidden size");
        Find<InvalidDataException>(LoadFailure(classes)).Message.Should().Contain("class count");

        (GC.GetTotalAllocatedBytes() - allocated).Should().BeLessThan(64L << 20, "nothing is sized from the bad numbers");
    }

    [Fact]
    public void AnAbsurdInputTypeIsRejected()
    {
        var type = _classifier.InputType;
        string path = ReplaceBytes("input.zip", Bytes(type.Write), Bytes((type with { StepSize = int.MaxValue }).Write));
        Find<InvalidDataException>(LoadFailure(path)).Message.Should().Contain("step size");
    }

    [Fact]
    public void AShapeThatDoesNotMatchTheInputTypeIsRejected()
    {
        string path = ReplaceShape("mismatch.zip", _classifier.Shape with { StepSize = 3 });
        Find<InvalidDataException>(LoadFailure(path)).Message.Should().Contain("does not match");
    }

    [Fact]
    public void ATruncatedWeightsStreamIsRejected()
    {
        string path = EditWeights("short.zip", w => w.AsSpan(0, w.Length - 100).ToArray());
        Find<InvalidDataException>(LoadFailure(path)).Message.Should().Contain("truncated");
    }

    [Fact]
    public void AnOversizedWeightsStreamIsRejected()
    {
        string path = EditWeights("long.zip", w => w.Concat(new byte[1 << 20]).ToArray());
        Find<InvalidDataException>(LoadFailure(path)).Message.Should().Contain("larger");
    }

    [Fact]
    public void CorruptWeightsAreRejected()
    {
        string path = EditWeights("corrupt.zip", w =>
        {
            var copy = (byte[])w.Clone();
            Array.Fill(copy, (byte)0xFF, 0, 32); // the first tensor's name and header
            return copy;
        });
        Find<InvalidDataException>(LoadFailure(path)).Message.Should().Contain("corrupt");
    }

    [Fact]
    public void MissingWeightsAreRejected()
    {
        string path = Rewrite("noweights.zip", (name, bytes) => name.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal) ? null : bytes);
        Find<InvalidDataException>(LoadFailure(path)).Message.Should().Contain(AuxLstmClassifierTransformer.WeightsStreamName);
    }

    // ---- helpers ----

    private static Exception LoadFailure(string path)
    {
        var exception = Record.Exception(() => new MLContext().Model.Load(path, out _));
        exception.Should().NotBeNull($"'{Path.GetFileName(path)}' is damaged and must not load");
        return exception!;
    }

    /// <summary>The first exception of type <typeparamref name="T"/> in the chain of inner exceptions.</summary>
    private static T Find<T>(Exception exception) where T : Exception
    {
        for (Exception? e = exception; e != null; e = e.InnerException)
        {
            if (e is T found)
                return found;
        }
        throw new Xunit.Sdk.XunitException($"Expected a {typeof(T).Name} among the exceptions, got:\n{exception}");
    }


    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Copies the good model, passing each entry through <paramref name="edit"/> (null drops it).</summary>
    private string Rewrite(string name, Func<string, byte[], byte[]?> edit)
    {
        string path = Path.Combine(_folder, name);
        using var archive = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (entryName, bytes) in ModelZip.Entries(_good))
        {
            var edited = edit(entryName, bytes);
            if (edited == null)
                continue;
            using var stream = archive.CreateEntry(entryName).Open();
            stream.Write(edited);
        }
        return path;
    }

    private static bool IsClassifierModelKey(string name, byte[] bytes) =>
        name.EndsWith("Model.key", StringComparison.Ordinal) && bytes.Length > 0x48 && Encoding.ASCII.GetString(bytes, 0x40, 8) == Signature;

    private string EditModelKey(string name, Action<byte[]> edit)
    {
        int edited = 0;
        string path = Rewrite(name, (entry, bytes) =>
        {
            if (!IsClassifierModelKey(entry, bytes))
                return bytes;
            edited++;
            var copy = (byte[])bytes.Clone();
            edit(copy);
            return copy;
        });
        edited.Should().Be(1, "the zip holds one AuxLstmClassifier model stream");
        return path;
    }

    private string EditWeights(string name, Func<byte[], byte[]> edit) =>
        Rewrite(name, (entry, bytes) => entry.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal) ? edit(bytes) : bytes);

    private string ReplaceBytes(string name, byte[] original, byte[] replacement)
    {
        replacement.Should().HaveSameCount(original);
        return EditModelKey(name, key =>
        {
            int at = key.AsSpan(0x100).IndexOf(original);
            at.Should().BeGreaterThanOrEqualTo(0, "the model stream holds the serialized value");
            replacement.CopyTo(key, 0x100 + at);
        });
    }

    private string ReplaceShape(string name, NetworkShape shape) => ReplaceBytes(name, Bytes(_classifier.Shape.Write), Bytes(shape.Write));

    private static byte[] Bytes(Action<BinaryWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
            write(writer);
        return buffer.ToArray();
    }
}
