using Microsoft.ML.AuxRnn.Tests.Integration;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;

namespace Microsoft.ML.AuxRnn.Tests.Export;

/// <summary>
/// <c>mlContext.Model.ConvertToOnnx</c> exports a pipeline ending in the AuxLstm classifier; ONNX Runtime (directly, and
/// through ML.NET's <c>ApplyOnnxModel</c>) then gives the ML.NET model's PredictedLabel on every row and its Score
/// within 1e-4, with no libtorch involved in scoring.
/// </summary>
public class OnnxExportTests : IDisposable
{
    private const float Tolerance = 1e-4f;
    private readonly ITestOutputHelper _output;
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "auxlstm-onnx-" + Guid.NewGuid().ToString("N"));

    public OnnxExportTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_folder);
    }

    public void Dispose() => Directory.Delete(_folder, true);

    public sealed class TokenRow
    {
        public string Label { get; set; } = "";

        [KeyType(20)]
        public uint[] Tokens { get; set; } = Array.Empty<uint>();
    }

    private sealed class Scored
    {
        public uint PredictedLabel { get; set; }

        public float[] Score { get; set; } = Array.Empty<float>();

        public float[] Embedding { get; set; } = Array.Empty<float>();
    }

    /// <summary>Tokens 1..10 ("lo") or 11..20 ("hi"), with a few of the other half, 3..30 steps.</summary>
    private static List<TokenRow> Tokens(int rows, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows).Select(i =>
        {
            bool hi = i % 2 == 0;
            var tokens = new uint[rng.Next(3, 31)];
            for (int t = 0; t < tokens.Length; t++)
                tokens[t] = (uint)(rng.NextDouble() < 0.8 == hi ? rng.Next(11, 21) : rng.Next(1, 11));
            return new TokenRow { Label = hi ? "hi" : "lo", Tokens = tokens };
        }).ToList();
    }

    private static AuxLstmClassifierOptions Options(Action<AuxLstmClassifierOptions> configure)
    {
        var options = Synthetic.TinyOptions(o =>
        {
            o.HiddenSize = 32; // a size libtorch's oneDNN LSTM kernel scores right on this machine's CPU
            o.EmbeddingSize = 16;
            o.ClassifierHiddenSize = 24;
            o.Epochs = 2;
            o.DropConnect = 0.5; // training only: the exported classifier has none
            o.EmbeddingColumnName = "Embedding";
        });
        configure(options);
        return options;
    }

    [Fact]
    public void VariableLengthFloatSequencesScoreTheSameInOnnxRuntime()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(48, 3, 30));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Options(o => o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct)))
            .Fit(data);
        var rows = ml.Data.CreateEnumerable<SequenceRow>(data, reuseRowObject: false).ToArray();
        rows.Select(r => r.Features.Length).Distinct().Should().HaveCountGreaterThan(10, "rows of many lengths");

        AssertSameInOnnxRuntime(ml, model, data, rows.Select(r => Inputs(("Features", Floats(r.Features)), ("Label", Text(r.Label)))).ToArray(), embedding: true);
    }

    [Fact]
    public void KeySequencesScoreTheSameInOnnxRuntime()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Tokens(48, 3));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Options(o => o.SequenceColumnName = "Tokens")))
            .Fit(data);
        model.LastTransformer.Shape.Vocabulary.Should().Be(22, "the 20 keys seen in training, the missing key 0 and one token for unseen keys");
        var rows = ml.Data.CreateEnumerable<TokenRow>(data, reuseRowObject: false).ToArray();

        AssertSameInOnnxRuntime(ml, model, data, rows.Select(r => Inputs(("Tokens", Keys(r.Tokens)), ("Label", Text(r.Label)))).ToArray(), embedding: true);
    }

    public sealed class WideKeyRow
    {
        public string Label { get; set; } = "";

        [KeyType(65_536)]
        public uint[] Tokens { get; set; } = Array.Empty<uint>();
    }

    [Fact]
    public void KeySequencesOfADenseVocabularyScoreTheSameInOnnxRuntimeUnseenKeysIncluded()
    {
        // A character-sized key type (65,536 keys) of which training uses 20 scattered keys: the graph maps keys to the
        // model's dense tokens (a lookup table before the embedding), unseen keys to its unknown token, as ML.NET does.
        static uint Key(int token) => (uint)(97 + 7 * token);
        var ml = new MLContext(seed: 1);
        var train = Tokens(48, 3).Select(r => new WideKeyRow { Label = r.Label, Tokens = r.Tokens.Select(t => Key((int)t)).ToArray() }).ToList();
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Options(o => o.SequenceColumnName = "Tokens")))
            .Fit(ml.Data.LoadFromEnumerable(train));
        model.LastTransformer.Shape.Vocabulary.Should().Be(22);

        var rng = new Random(8);
        var scoring = Tokens(24, 11).Select(r => new WideKeyRow
        {
            Label = r.Label,
            // About one key in five unseen in training (including the largest key and the missing key 0).
            Tokens = r.Tokens.Select(t => rng.Next(5) == 0 ? (uint)rng.Next(new[] { 0, 1, 98, 65_536 }[rng.Next(4)], 65_537) : Key((int)t)).ToArray(),
        }).ToList();
        scoring.SelectMany(r => r.Tokens).Should().Contain(k => model.LastTransformer.InputType.KeyMap!.Map(k) == 1, "the rows hold unseen keys");
        var data = ml.Data.LoadFromEnumerable(scoring);

        AssertSameInOnnxRuntime(ml, model, data, scoring.Select(r => Inputs(("Tokens", Keys(r.Tokens)), ("Label", Text(r.Label)))).ToArray(), embedding: true);
    }

    [Theory]
    [InlineData(8, 1)]  // InputLevels: float levels embedded as tokens
    [InlineData(0, 3)]  // StepSize 3: three values per step, projected
    public void LevelsAndMultiValueStepsScoreTheSameInOnnxRuntime(int levels, int stepSize)
    {
        var ml = new MLContext(seed: 1);
        var rng = new Random(4);
        var raw = Enumerable.Range(0, 48).Select(i => new FixedRow
        {
            Label = i % 2 == 0 ? "up" : "down",
            Features = Enumerable.Range(0, 12).Select(t => (float)Math.Clamp((i % 2 == 0 ? t : 11 - t) * 8 / 12 + rng.Next(-1, 2), 0, 7)).ToArray(),
        }).ToList();
        var data = ml.Data.LoadFromEnumerable(raw);
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Options(o =>
            {
                o.InputLevels = levels;
                o.StepSize = stepSize;
                o.EmbeddingColumnName = null;
                o.SegmentLength = 2;
            })))
            .Fit(data);

        AssertSameInOnnxRuntime(ml, model, data, raw.Select(r => Inputs(("Features", Floats(r.Features)), ("Label", Text(r.Label)))).ToArray(), embedding: false);
    }

    [Fact]
    public void ApplyOnnxModelInMLNetGivesTheSamePredictions()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(40, 3, 30, seed: 5));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.AuxLstmClassifier(Options(o => o.EmbeddingColumnName = null)))
            .Fit(data);

        AssertSameThroughApplyOnnxModel(ml, model, data).Should().HaveCount(40);
    }

    [Theory]
    [InlineData(0)]   // pixels as continuous values, standardised inside the model
    [InlineData(256)] // pixels as 256 tokens, as in the paper
    public void APipelineReadFromTheMnistLoaderScoresTheSameThroughApplyOnnxModel(int levels)
    {
        // The loader's own IDataView (a key Label with class names, a 784-float Features vector) feeds both the
        // export and ONNX Runtime, as a user pointing AuxRnnDatasets at the idx files would. Permuted, so that the last
        // steps (which a briefly trained model's scores mostly depend on) hold pixels of the digit, not the blank border.
        var ml = new MLContext(seed: 1);
        var data = AuxRnn.Datasets.AuxRnnDatasets.LoadMnist(ml, TestData.Path("mnist", "t10k-images-idx3-ubyte.gz"),
            TestData.Path("mnist", "t10k-labels-idx1-ubyte.gz"), permutationSeed: 1, maxRows: 60);
        var model = ml.Transforms.AuxLstmClassifier(Options(o =>
        {
            o.InputLevels = levels;
            o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct;
            o.SegmentLength = 8;
            o.TruncationLength = 20;
            o.EmbeddingColumnName = null;
        })).Fit(data);

        var scores = AssertSameThroughApplyOnnxModel(ml, model, data);
        scores.Should().HaveCount(60).And.OnlyContain(s => s.Length == 10);
        // A model this small, trained this briefly, may predict one digit for every row (the key mapping of ArgMax is
        // compared over two predicted classes by the tests above); that the graph reads each row's pixels shows in
        // scores that differ from row to row, and match.
        scores.Max(s => s.Zip(scores[0], (a, b) => Math.Abs(a - b)).Max()).Should().BeGreaterThan(1e-3f, "the scores depend on each row's pixels");
    }

    public sealed class RawRow
    {
        public string Label { get; set; } = "";

        public float[] Raw { get; set; } = Array.Empty<float>();
    }

    public sealed class FeaturesRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    [Fact]
    public void ASequenceColumnMadeByAStepOnnxCannotExpressIsRefusedNamingIt()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Synthetic.Trends(16, 3, 8).Select(r => new RawRow { Label = r.Label, Raw = r.Features }));
        var model = ml.Transforms.CustomMapping<RawRow, FeaturesRow>((i, o) => o.Features = i.Raw.Select(v => 2 * v).ToArray(), contractName: null)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.Transforms.AuxLstmClassifier(Options(o => o.EmbeddingColumnName = null)))
            .Fit(data);

        var act = () => ml.Model.ConvertToOnnx(model, data, new MemoryStream());

        act.Should().Throw<ArgumentException>().Where(e => e.Message.Contains("'Features'") && e.Message.Contains("SequenceColumnName"));
    }

    // ---- helpers ----

    /// <summary>Exports the model and scores <paramref name="data"/> through ML.NET's ApplyOnnxModel: the same
    /// PredictedLabel and Score on every row. Returns ONNX Runtime's scores.</summary>
    private float[][] AssertSameThroughApplyOnnxModel(MLContext ml, ITransformer model, IDataView data)
    {
        string path = Export(ml, model, data);
        var onnx = ml.Transforms.ApplyOnnxModel(new[] { "Score.output", "PredictedLabel.output" }, new[] { "Features", "Label" }, path).Fit(data);
        var fromOnnx = onnx.Transform(data);
        // ApplyOnnxModel names its columns after the graph outputs without ML.NET's ".output" suffix.
        var scores = fromOnnx.GetColumn<float[]>("Score").ToArray();
        var predicted = fromOnnx.GetColumn<uint[]>("PredictedLabel").ToArray();
        var expected = ml.Data.CreateEnumerable<Scored>(model.Transform(data), reuseRowObject: false, ignoreMissingColumns: true).ToArray();

        scores.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            predicted[i].Should().Equal(new[] { expected[i].PredictedLabel }, $"row {i}");
            scores[i].Should().Equal(expected[i].Score, (a, b) => Math.Abs(a - b) <= Tolerance, $"row {i}");
        }
        return scores;
    }

    private string Export(MLContext ml, ITransformer model, IDataView data)
    {
        string path = Path.Combine(_folder, "model.output");
        using (var stream = File.Create(path))
            ml.Model.ConvertToOnnx(model, data, stream);
        _output.WriteLine($"{new FileInfo(path).Length:N0} bytes of ONNX");
        return path;
    }

    private void AssertSameInOnnxRuntime(MLContext ml, ITransformer model, IDataView data, IReadOnlyList<NamedOnnxValue[]> inputs, bool embedding)
    {
        var expected = ml.Data.CreateEnumerable<Scored>(model.Transform(data), reuseRowObject: false, ignoreMissingColumns: true).ToArray();
        string path = Export(ml, model, data);

        using var session = new InferenceSession(path);
        session.OutputMetadata.Keys.Should().Contain(new[] { "Score.output", "PredictedLabel.output" });
        if (embedding)
            session.OutputMetadata.Keys.Should().Contain("Embedding.output");
        string text = System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(path)); // operator types are plain strings in the protobuf
        text.Should().Contain("LSTM").And.Contain("Softmax").And.Contain("ArgMax");
        text.Should().Contain(model is TransformerChain<AuxLstmClassifierTransformer> c && c.LastTransformer.Shape.Discrete ? "Gather" : "MatMul");

        double worst = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            using var results = session.Run(inputs[i]);
            var byName = results.ToDictionary(r => r.Name);
            var score = byName["Score.output"].AsTensor<float>().ToArray();
            var predicted = byName["PredictedLabel.output"].AsTensor<uint>().ToArray();

            predicted.Should().Equal(new[] { expected[i].PredictedLabel }, $"row {i}");
            score.Should().Equal(expected[i].Score, (a, b) => Math.Abs(a - b) <= Tolerance, $"row {i}");
            worst = Math.Max(worst, score.Zip(expected[i].Score, (a, b) => Math.Abs(a - b)).Max());
            if (embedding)
                byName["Embedding.output"].AsTensor<float>().ToArray().Should().Equal(expected[i].Embedding, (a, b) => Math.Abs(a - b) <= Tolerance, $"row {i}");
        }
        expected.Select(e => e.PredictedLabel).Distinct().Should().HaveCount(2, "both classes are predicted, so the labels are really compared");
        _output.WriteLine($"{inputs.Count} rows; largest score difference {worst:G3}");
    }

    private static NamedOnnxValue[] Inputs(params (string Name, Func<string, NamedOnnxValue> Make)[] inputs) =>
        inputs.Select(i => i.Make(i.Name)).ToArray();

    private static Func<string, NamedOnnxValue> Floats(float[] values) =>
        name => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(values, new[] { 1, values.Length }));

    private static Func<string, NamedOnnxValue> Keys(uint[] values) =>
        name => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<uint>(values, new[] { 1, values.Length }));

    private static Func<string, NamedOnnxValue> Text(string value) =>
        name => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<string>(new[] { value }, new[] { 1, 1 }));
}
