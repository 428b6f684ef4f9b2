using Microsoft.ML.Data;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.AuxRnn.Tests.Integration;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// Every part the classifier writes carries a SHA-256 that loading checks: one byte changed anywhere in a part (at
/// random positions, drawn anew on every run) fails the load with an <see cref="InvalidDataException"/> that names
/// the part, and never gives scores. Files saved before the checks still load. Crafted zips whose weights entry
/// declares a huge size, or inflates to one, are refused from the zip's directory, before anything is extracted.
/// </summary>
public sealed class ModelIntegrityTests : IDisposable
{
    private const int FlipsPerPart = 20;
    private readonly string _folder = Directory.CreateTempSubdirectory("auxrnn-integrity-").FullName;
    private readonly string _good;
    private readonly IDataView _data;
    private readonly ITestOutputHelper _output;

    public ModelIntegrityTests(ITestOutputHelper output)
    {
        _output = output;
        var ml = new MLContext(seed: 1);
        _data = ml.Data.LoadFromEnumerable(Synthetic.Trends(16, 3, 6));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions())).Fit(_data);
        _good = Path.Combine(_folder, "good.zip");
        ml.Model.Save(model, _data.Schema, _good);
        model.LastTransformer.Dispose();
    }

    public void Dispose()
    {
        Directory.Delete(_folder, recursive: true);
        CollectGarbage();
    }

    /// <summary>Finalizes what the damaged loads left behind now, not during a later test that counts live tensors.</summary>
    internal static void CollectGarbage()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static bool IsClassifierKey(string name, byte[] bytes) =>
        name.EndsWith("Model.key", StringComparison.Ordinal) && bytes.Length > 0x100 && Encoding.ASCII.GetString(bytes, 0x40, 8) == "AUXLSTMC";

    private static long Field(byte[] key, int offset) => BinaryPrimitives.ReadInt64LittleEndian(key.AsSpan(offset));

    [Fact]
    public void OneByteChangedAnywhereInAPartFailsTheLoadNamingThePart()
    {
        var entries = ModelZip.Entries(_good);
        string keyName = entries.Single(e => IsClassifierKey(e.Key, e.Value)).Key;
        string weightsName = entries.Keys.Single(k => k.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal));
        byte[] key = entries[keyName];
        // The classifier's parts: its model block (settings, label keys, checksum trailer), the string table's
        // characters (column names, label values) and the weights stream.
        long block = Field(key, 0x10), blockSize = Field(key, 0x18), chars = Field(key, 0x30), charsSize = Field(key, 0x38);
        var parts = new (string Entry, long Start, long Length, string Named)[]
        {
            (keyName, block, blockSize, "settings"),
            (keyName, chars, charsSize, "settings"),
            (weightsName, 0, entries[weightsName].Length, $"weights stream '{AuxLstmClassifierTransformer.WeightsStreamName}'"),
        };
        parts.Should().OnlyContain(p => p.Length > 0);

        int seed = Random.Shared.Next();
        _output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        foreach (var part in parts)
        {
            for (int i = 0; i < FlipsPerPart; i++)
            {
                long at = part.Start + rng.NextInt64(part.Length);
                byte mask = (byte)rng.Next(1, 256);
                var copy = entries.ToDictionary(e => e.Key, e => (byte[])e.Value.Clone());
                copy[part.Entry][at] ^= mask;
                string what = $"seed {seed}: byte {at} of {part.Entry} ^ 0x{mask:X2}";
                string path = Zip($"flip.zip", copy);

                Exception? failure = null;
                try
                {
                    var model = new MLContext().Model.Load(path, out _);
                    var scores = model.Transform(_data).GetColumn<float[]>("Score").ToArray();
                    foreach (var transformer in ((IEnumerable<ITransformer>)model).OfType<IDisposable>())
                        transformer.Dispose();
                    throw new Xunit.Sdk.XunitException($"{what}: the damaged file loaded and scored {scores.Length} rows");
                }
                catch (Exception e) when (e is not Xunit.Sdk.XunitException)
                {
                    failure = e;
                }
                var invalid = Chain(failure).OfType<InvalidDataException>().FirstOrDefault();
                invalid.Should().NotBeNull($"{what} must be reported as a damaged file:\n{failure}");
                invalid!.Message.Should().Contain("SHA-256", what).And.Contain(part.Named, what);
            }
        }
    }

    [Fact]
    public void AFileSavedBeforeTheChecksumsStillLoadsAndScoresTheSame()
    {
        var entries = ModelZip.Entries(_good);
        string keyName = entries.Single(e => IsClassifierKey(e.Key, e.Value)).Key;
        entries[keyName] = WithoutTrailer(entries[keyName]);
        string legacy = Zip("legacy.zip", entries);

        var good = new MLContext().Model.Load(_good, out _);
        var old = new MLContext().Model.Load(legacy, out _);
        var expected = good.Transform(_data).GetColumn<float[]>("Score").ToArray();
        var actual = old.Transform(_data).GetColumn<float[]>("Score").ToArray();
        foreach (var model in new[] { good, old }.Cast<IEnumerable<ITransformer>>().SelectMany(c => c).OfType<IDisposable>())
            model.Dispose();
        actual.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
            actual[i].Should().Equal(expected[i], $"row {i}");
    }

    [Fact]
    public void AWeightsEntryDeclaringAHugeSizeIsRefusedBeforeExtraction()
    {
        // The zip's directory (and local header) claim 2 GiB for the weights; the data is the real, small stream.
        byte[] zip = File.ReadAllBytes(_good);
        PatchDeclaredSize(zip, AuxLstmClassifierTransformer.WeightsStreamName, 0x7FFF_FFF0u);
        string path = Path.Combine(_folder, "huge.zip");
        File.WriteAllBytes(path, zip);

        long allocated = GC.GetTotalAllocatedBytes();
        var failure = Record.Exception(() => new MLContext().Model.Load(path, out _));
        (GC.GetTotalAllocatedBytes() - allocated).Should().BeLessThan(64L << 20, "nothing is sized from the declared size");
        var invalid = Chain(failure!).OfType<InvalidDataException>().FirstOrDefault();
        invalid.Should().NotBeNull($"{failure}");
        invalid!.Message.Should().Contain("declares 2,147,483,632 bytes").And.Contain("nothing of it was extracted");
    }

    [Fact]
    public void AZipBombInPlaceOfTheWeightsIsRefusedBeforeExtraction()
    {
        // 256 MiB of zeros deflate to about 256 KiB: honest sizes in the zip, far beyond what the network can hold.
        var entries = ModelZip.Entries(_good);
        string weightsName = entries.Keys.Single(k => k.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal));
        string path = Path.Combine(_folder, "bomb.zip");
        using (var archive = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            foreach (var (name, bytes) in entries)
            {
                using var stream = archive.CreateEntry(name, CompressionLevel.Fastest).Open();
                if (name != weightsName)
                {
                    stream.Write(bytes);
                    continue;
                }
                var zeros = new byte[1 << 20];
                for (int i = 0; i < 256; i++)
                    stream.Write(zeros);
            }
        }
        new FileInfo(path).Length.Should().BeLessThan(8L << 20, "the bomb is small on disk");

        var watch = System.Diagnostics.Stopwatch.StartNew();
        long allocated = GC.GetTotalAllocatedBytes();
        var failure = Record.Exception(() => new MLContext().Model.Load(path, out _));
        (GC.GetTotalAllocatedBytes() - allocated).Should().BeLessThan(64L << 20);
        _output.WriteLine($"refused in {watch.ElapsedMilliseconds} ms");
        var invalid = Chain(failure!).OfType<InvalidDataException>().FirstOrDefault();
        invalid.Should().NotBeNull($"{failure}");
        invalid!.Message.Should().Contain("declares 268,435,456 bytes").And.Contain("nothing of it was extracted");
    }

    // ---- helpers ----

    /// <summary>The classifier's model stream as version 0x00010001 wrote it: no embedding column id (0x00010003) and no checksum trailer (0x00010002).</summary>
    private static byte[] WithoutTrailer(byte[] key)
    {
        const int Trailer = 4 + 8 + 32 + 32; // the embedding column's string id (−1: none), then the trailer
        long block = Field(key, 0x10), size = Field(key, 0x18);
        var bytes = key.Take((int)(block + size - Trailer)).Concat(key.Skip((int)(block + size))).ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(0x18), size - Trailer);
        foreach (int offset in new[] { 0x20, 0x30, 0x80, 0x88, 0x90 }) // string table, string chars, tail, lim, assembly name
        {
            long value = Field(bytes, offset);
            if (value != 0)
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(offset), value - Trailer);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x48), 0x00010001); // written
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x4C), 0x00010001); // readable
        return bytes;
    }

    /// <summary>Sets the uncompressed size of the entry ending with <paramref name="suffix"/> in the central directory and the local header.</summary>
    private static void PatchDeclaredSize(byte[] zip, string suffix, uint size)
    {
        int end = zip.AsSpan().LastIndexOf(new byte[] { 0x50, 0x4B, 0x05, 0x06 });
        end.Should().BeGreaterThan(0);
        int entries = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(end + 10));
        int at = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(end + 16));
        int patched = 0;
        for (int i = 0; i < entries; i++)
        {
            BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at)).Should().Be(0x02014B50u);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 28));
            int extra = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 30));
            int comment = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 32));
            string name = Encoding.UTF8.GetString(zip, at + 46, nameLength);
            if (name.EndsWith(suffix, StringComparison.Ordinal))
            {
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(at + 24), size);
                int local = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at + 42));
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(local + 22), size);
                patched++;
            }
            at += 46 + nameLength + extra + comment;
        }
        patched.Should().Be(1);
    }

    private static IEnumerable<Exception> Chain(Exception? e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
        {
            yield return x;
            if (x is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions.SelectMany(Chain))
                    yield return inner;
            }
        }
    }

    private string Zip(string name, Dictionary<string, byte[]> entries)
    {
        string path = Path.Combine(_folder, name);
        File.Delete(path);
        using var archive = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (entryName, bytes) in entries)
        {
            using var stream = archive.CreateEntry(entryName).Open();
            stream.Write(bytes);
        }
        return path;
    }
}
