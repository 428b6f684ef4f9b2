using Microsoft.ML.Data;
using System.IO.Compression;
using Microsoft.ML.AuxRnn.Tests.Integration;

namespace Microsoft.ML.AuxRnn.Tests.Reliability;

/// <summary>
/// Randomly damaged model files never take the process down: loading (and scoring, when a damaged file still
/// loads) either works, with finite probabilities, or throws a managed exception that says the file is bad.
/// </summary>
public sealed class ModelFileFuzzTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("auxrnn-fuzz-").FullName;
    private readonly string _good;
    private readonly IDataView _data;

    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public ModelFileFuzzTests(Xunit.Abstractions.ITestOutputHelper output)
    {
        _output = output;
        var ml = new MLContext(seed: 1);
        _data = ml.Data.LoadFromEnumerable(Synthetic.Trends(16, 3, 6));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(Synthetic.TinyOptions())).Fit(_data);
        _good = Path.Combine(_folder, "good.zip");
        ml.Model.Save(model, _data.Schema, _good);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void RandomByteFlipsAnywhereInTheZipFailCleanly()
    {
        byte[] good = File.ReadAllBytes(_good);
        var outcomes = new List<string>();
        for (int seed = 0; seed < 40; seed++)
        {
            var rng = new Random(seed);
            var bytes = (byte[])good.Clone();
            int flips = 1 + rng.Next(8);
            for (int i = 0; i < flips; i++)
                bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
            outcomes.Add(LoadAndScore(Write($"flip{seed}.zip", bytes), $"seed {seed}"));
        }
        _output.WriteLine(string.Join(", ", outcomes.GroupBy(o => o).Select(g => $"{g.Key} x{g.Count()}")));
        outcomes.Should().Contain(o => o != "scored", "most damage is detected");
    }

    [Fact]
    public void RandomByteFlipsInsideTheClassifiersStreamsFailCleanly()
    {
        // Inside the zip's compression and checksums: the damage reaches the classifier's own reader.
        var entries = ModelZip.Entries(_good);
        string[] targets = entries.Keys.Where(k => k.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal)
            || (k.EndsWith("Model.key", StringComparison.Ordinal) && System.Text.Encoding.ASCII.GetString(entries[k], 0x40, 8) == "AUXLSTMC")).ToArray();
        targets.Should().HaveCount(2);
        var outcomes = new List<string>();
        for (int seed = 0; seed < 40; seed++)
        {
            var rng = new Random(1000 + seed);
            string target = targets[seed % 2];
            var copy = entries.ToDictionary(e => e.Key, e => (byte[])e.Value.Clone());
            var bytes = copy[target];
            int flips = 1 + rng.Next(4);
            for (int i = 0; i < flips; i++)
            {
                // The model stream's ML.NET header (0x00..0x100) has its own tests; fuzz what this library reads.
                int at = target.EndsWith("Model.key", StringComparison.Ordinal) ? 0x100 + rng.Next(bytes.Length - 0x100) : rng.Next(bytes.Length);
                bytes[at] ^= (byte)(1 << rng.Next(8));
            }
            outcomes.Add(LoadAndScore(Zip($"inner{seed}.zip", copy), $"seed {seed}, {Path.GetFileName(target)}"));
        }
        _output.WriteLine(string.Join(", ", outcomes.GroupBy(o => o).Select(g => $"{g.Key} x{g.Count()}")));
        outcomes.Should().Contain(o => o != "scored");
    }

    [Fact]
    public void NonFiniteWeightsAreRejected()
    {
        var entries = ModelZip.Entries(_good);
        string weights = entries.Keys.Single(k => k.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal));
        // The stream ends with the last tensor's raw values: make its last float NaN.
        BitConverter.GetBytes(float.NaN).CopyTo(entries[weights], entries[weights].Length - 4);
        string path = Zip("nan.zip", entries);

        var exception = Record.Exception(() => new MLContext().Model.Load(path, out _));

        exception.Should().NotBeNull();
        Chain(exception!).OfType<InvalidDataException>().Should().ContainSingle().Which.Message.Should().Contain("NaN");
    }

    /// <summary>Loads and scores a damaged file; returns "scored" or the failure's type. Asserts everything else.</summary>
    private string LoadAndScore(string path, string what)
    {
        long allocated = GC.GetTotalAllocatedBytes();
        ITransformer? model = null;
        try
        {
            model = new MLContext().Model.Load(path, out _);
            var scores = model.Transform(_data).GetColumn<float[]>("Score").ToArray();
            scores.Should().HaveCount(16, what);
            scores.Should().OnlyContain(s => s.All(float.IsFinite) && Math.Abs(s.Sum() - 1) < 1e-3, $"a damaged file that loads still scores probabilities ({what})");
            return "scored";
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            var chain = Chain(e).ToList();
            chain.Should().NotContain(x => x is NullReferenceException || x is IndexOutOfRangeException || x is OutOfMemoryException
                || x is AccessViolationException || x is System.Runtime.InteropServices.SEHException || x is InvalidCastException,
                $"damage must be reported as a bad file, not a bug ({what}):\n{e}");
            // IOException: also a damaged loader assembly name, which ML.NET then fails to load ("Could not load file or assembly 'MicrosoŦt.ML.AuxRnn'").
            chain.Should().Contain(x => x is InvalidDataException || x is FormatException || x is IOException || x is ArgumentException,
                $"the failure should say what is wrong ({what}):\n{e}");
            var clear = chain.First(x => x is not System.Reflection.TargetInvocationException);
            return clear.GetType().Name + ": " + clear.Message.Split('\n')[0];
        }
        finally
        {
            (model as IDisposable)?.Dispose();
            (GC.GetTotalAllocatedBytes() - allocated).Should().BeLessThan(256L << 20, $"nothing large is allocated from damaged sizes ({what})");
        }
    }

    private static IEnumerable<Exception> Chain(Exception e)
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

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }


    private string Zip(string name, Dictionary<string, byte[]> entries)
    {
        string path = Path.Combine(_folder, name);
        using var archive = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (entryName, bytes) in entries)
        {
            using var stream = archive.CreateEntry(entryName).Open();
            stream.Write(bytes);
        }
        return path;
    }
}
