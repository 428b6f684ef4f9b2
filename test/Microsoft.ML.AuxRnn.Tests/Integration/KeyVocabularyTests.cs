using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.AuxRnn.Tests.Integration;

/// <summary>
/// A key-typed sequence column is read through a dense vocabulary of the keys that occur in the training rows
/// (plus the missing key and one token for unseen keys): the embedding and the decoder's output layer follow the
/// characters a text uses, not the 65,535 keys of <c>TokenizeIntoCharactersAsKeys</c>; the mapping is saved with the
/// model and applied when scoring; models saved before it still load and score as they did.
/// </summary>
public sealed class KeyVocabularyTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("auxrnn-vocabulary-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public sealed class Text
    {
        [LoadColumn(0)]
        public uint Class { get; set; }

        [LoadColumn(2)]
        public string Body { get; set; } = "";
    }

    public sealed class TokenRow
    {
        public string Label { get; set; } = "";

        [KeyType(1000)]
        public uint[] Tokens { get; set; } = Array.Empty<uint>();
    }

    private sealed class Scores
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    /// <summary>40 documents of two DBpedia classes, cut to their first 80 characters.</summary>
    private static IDataView Documents(MLContext ml)
    {
        var loaded = ml.Data.LoadFromTextFile<Text>(TestData.Path("dbpedia", "train.csv"), separatorChar: ',', hasHeader: false, allowQuoting: true);
        var rows = ml.Data.CreateEnumerable<Text>(loaded, reuseRowObject: false)
            .Where(d => d.Class is 1 or 9)
            .GroupBy(d => d.Class)
            .SelectMany(g => g.Take(20))
            .Select(d => new Text { Class = d.Class, Body = d.Body[..Math.Min(80, d.Body.Length)] })
            .ToList();
        return ml.Data.LoadFromEnumerable(rows);
    }

    private static AuxLstmClassifierOptions RLstm(string sequence) => Synthetic.TinyOptions(o =>
    {
        o.SequenceColumnName = sequence;
        o.AuxiliaryLoss = AuxiliaryLoss.Reconstruct;
        o.SegmentLength = 6;
        o.TruncationLength = 30;
        o.AuxiliaryTruncationLength = 30;
    });

    [Fact]
    public void TheEmbeddingAndDecoderOutputFollowTheCharactersTheTrainingTextUses()
    {
        var ml = new MLContext(seed: 1);
        var data = Documents(ml);
        var chars = ml.Transforms.Conversion.MapValueToKey("Label", "Class")
            .Append(ml.Transforms.Text.TokenizeIntoCharactersAsKeys("Chars", nameof(Text.Body))).Fit(data).Transform(data);
        var keyType = (KeyDataViewType)((VectorDataViewType)chars.Schema["Chars"].Type).ItemType;
        keyType.Count.Should().Be(ushort.MaxValue, "TokenizeIntoCharactersAsKeys keys the UTF-16 code units, 65,535 of them");
        var used = chars.GetColumn<VBuffer<ushort>>("Chars").SelectMany(v => v.DenseValues()).Where(k => k != 0).Select(k => (ulong)k).Distinct().Order().ToArray();
        used.Length.Should().BeInRange(30, 300, "40 short documents (Latin, some IPA and Arabic) use 129 characters, plus the tokenizer's two markers");

        var estimator = ml.Transforms.AuxLstmClassifier(RLstm("Chars"));
        using var classifier = estimator.Fit(chars);

        classifier.InputType.KeyCount.Should().Be(ushort.MaxValue);
        classifier.InputType.KeyMap!.Keys.Should().Equal(used, "the vocabulary is the keys of the training rows, in key order");
        classifier.Shape.Vocabulary.Should().Be(used.Length + 2, "those keys, the missing key 0 and one token for unseen keys");
        // The decoder is sized from the same shape: its output layer has one logit per token of the dense vocabulary.
        using (var decoder = new Microsoft.ML.AuxRnn.Model.AuxiliaryDecoder(classifier.Shape))
            decoder.parameters().Sum(p => p.numel()).Should().BeLessThan(20_000, $"a {classifier.Shape.Vocabulary}-way output layer and embedding, not 65,536-way ones");

        // Saved with the model: the weights stream holds a used-size embedding, and the scores survive a reload bit for bit.
        string path = Path.Combine(_folder, "chars.zip");
        ml.Model.Save(classifier, chars.Schema, path);
        var weights = ModelZip.Entries(path).Single(e => e.Key.EndsWith(AuxLstmClassifierTransformer.WeightsStreamName, StringComparison.Ordinal)).Value;
        weights.Length.Should().BeLessThan(64 << 10, "an embedding of 65,536 × 8 floats alone would be 2 MiB");
        var expected = classifier.Transform(chars).GetColumn<float[]>("Score").ToArray();
        var loaded = new MLContext(seed: 5).Model.Load(path, out _);
        try
        {
            var actual = loaded.Transform(chars).GetColumn<float[]>("Score").ToArray();
            actual.Should().HaveCount(expected.Length);
            for (int i = 0; i < expected.Length; i++)
                actual[i].Should().Equal(expected[i], (a, b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b), $"row {i}");
            Classifier(loaded).InputType.KeyMap!.Keys.Should().Equal(used);
        }
        finally
        {
            Dispose(loaded);
        }
    }

    /// <summary>Tokens among 1..20 ("lo": mostly 1..10, "hi": mostly 11..20), of a column of 1,000 keys.</summary>
    private static List<TokenRow> Tokens(int rows, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows).Select(i =>
        {
            bool hi = i % 2 == 0;
            var tokens = new uint[rng.Next(3, 21)];
            for (int t = 0; t < tokens.Length; t++)
                tokens[t] = (uint)(rng.NextDouble() < 0.8 == hi ? rng.Next(11, 21) : rng.Next(1, 11));
            return new TokenRow { Label = hi ? "hi" : "lo", Tokens = tokens };
        }).ToList();
    }

    [Fact]
    public void KeyRowsStreamedThroughTheShuffleBufferKeepTheColumnsKeysAndStillSaveAndScore()
    {
        // Rows larger than ShuffleBufferMegabytes stream every epoch; a dense vocabulary would need one more pass over
        // them, so they keep the column's key count as their vocabulary (stated in the options' docs).
        var ml = new MLContext(seed: 1);
        var rng = new Random(4);
        var rows = Enumerable.Range(0, 1_200).Select(i => new TokenRow
        {
            Label = i % 2 == 0 ? "a" : "b",
            Tokens = Enumerable.Range(0, 300).Select(_ => (uint)rng.Next(1, 41) + (i % 2 == 0 ? 0u : 40u)).ToArray(),
        }).ToList(); // 1,200 × 300 tokens: 1.4 MiB, more than a 1 MiB buffer
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        var options = RLstm(nameof(TokenRow.Tokens));
        options.ShuffleBufferMegabytes = 1;
        options.Epochs = 1;
        using var classifier = ml.Transforms.AuxLstmClassifier(options).Fit(data);

        classifier.InputType.KeyMap.Should().BeNull("streamed rows keep the raw keys");
        classifier.Shape.Vocabulary.Should().Be(1001, "the column's 1,000 keys and the missing key");
        string path = Path.Combine(_folder, "streamed-keys.zip");
        ml.Model.Save(classifier, data.Schema, path);
        var expected = classifier.Transform(data).GetColumn<float[]>("Score").Take(50).ToArray();
        var actual = new MLContext(seed: 2).Model.Load(path, out _).Transform(data).GetColumn<float[]>("Score").Take(50).ToArray();
        actual.Should().BeEquivalentTo(expected, o => o.WithStrictOrdering());
        expected.SelectMany(s => s).Should().OnlyContain(p => float.IsFinite(p));
    }

    [Fact]
    public void KeysUnseenInTrainingMapToTheUnknownTokenAndScoreFinitely()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Tokens(40, 2));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.AuxLstmClassifier(RLstm("Tokens"))).Fit(data);
        var classifier = model.LastTransformer;
        try
        {
            var map = classifier.InputType.KeyMap!;
            map.Keys.Should().Equal(Enumerable.Range(1, 20).Select(k => (ulong)k));
            classifier.Shape.Vocabulary.Should().Be(22);
            map.Map(0).Should().Be(KeyVocabulary.Missing);
            map.Map(7).Should().Be(KeyVocabulary.FirstKey + 6);
            map.Map(21).Should().Be(KeyVocabulary.Unknown);
            map.Map(1000).Should().Be(KeyVocabulary.Unknown);

            // Two rows that differ only in which unseen key they hold read the same tokens, and so score the same,
            // in Transform and in a prediction engine; a seen key in that place is read as itself.
            var probe = new[]
            {
                new TokenRow { Label = "hi", Tokens = new uint[] { 12, 15, 500, 18, 14 } },
                new TokenRow { Label = "hi", Tokens = new uint[] { 12, 15, 999, 18, 14 } },
                new TokenRow { Label = "hi", Tokens = new uint[] { 12, 15, 3, 18, 14 } },
                new TokenRow { Label = "lo", Tokens = new uint[] { 700, 800, 900 } },
            };
            var scores = model.Transform(ml.Data.LoadFromEnumerable(probe)).GetColumn<float[]>("Score").ToArray();
            scores.Should().OnlyContain(s => s.All(float.IsFinite) && Math.Abs(s.Sum() - 1) < 1e-5);
            scores[1].Should().Equal(scores[0]);
            scores[2].Should().NotEqual(scores[0]);

            var engine = ml.Model.CreatePredictionEngine<TokenRow, Scores>(model);
            for (int i = 0; i < probe.Length; i++)
                engine.Predict(probe[i]).Score.Should().Equal(scores[i], (a, b) => Math.Abs(a - b) < 1e-6f, $"row {i}");
        }
        finally
        {
            classifier.Dispose();
        }
    }

    [Fact]
    public void AKeyModelSavedBeforeKeyVocabulariesStillLoadsAndScoresTheSame()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Tokens(32, 3));
        var labels = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data);
        var keyed = labels.Transform(data);
        // The way earlier versions trained: key k is token k, a vocabulary of the key count + 1.
        var estimator = ml.Transforms.AuxLstmClassifier(RLstm("Tokens"));
        estimator.MapKeysToVocabulary = false;
        using var classifier = estimator.Fit(keyed);
        classifier.Shape.Vocabulary.Should().Be(1001);
        classifier.InputType.KeyMap.Should().BeNull();
        var scoring = ml.Data.LoadFromEnumerable(Tokens(12, 9).Append(new TokenRow { Label = "lo", Tokens = new uint[] { 500, 600, 4 } }));
        var expected = classifier.Transform(labels.Transform(scoring)).GetColumn<float[]>("Score").ToArray();

        // Re-saved by this version (it records "no vocabulary"), and as version 0x00010001 wrote it (no embedding
        // column, no vocabulary, no checksum trailer).
        string resaved = Path.Combine(_folder, "resaved.zip");
        ml.Model.Save(classifier, keyed.Schema, resaved);
        var entries = ModelZip.Entries(resaved);
        string keyName = entries.Single(e => e.Key.EndsWith("Model.key", StringComparison.Ordinal) && Encoding.ASCII.GetString(e.Value, 0x40, 8) == "AUXLSTMC").Key;
        entries[keyName] = AsVersion00010001(entries[keyName]);
        string legacy = Path.Combine(_folder, "legacy.zip");
        using (var archive = ZipFile.Open(legacy, ZipArchiveMode.Create))
        {
            foreach (var (name, bytes) in entries)
            {
                using var stream = archive.CreateEntry(name).Open();
                stream.Write(bytes);
            }
        }

        foreach (string path in new[] { resaved, legacy })
        {
            var loaded = Classifier(new MLContext(seed: 5).Model.Load(path, out _));
            try
            {
                loaded.InputType.KeyMap.Should().BeNull(Path.GetFileName(path));
                loaded.Shape.Vocabulary.Should().Be(1001);
                var actual = loaded.Transform(labels.Transform(scoring)).GetColumn<float[]>("Score").ToArray();
                actual.Should().HaveCount(expected.Length);
                for (int i = 0; i < expected.Length; i++)
                    actual[i].Should().Equal(expected[i], $"{Path.GetFileName(path)}, row {i}");
            }
            finally
            {
                loaded.Dispose();
            }
        }
    }

    [Fact]
    public void AKeyModelFileWrittenByTheVersionBeforeKeyVocabulariesScoresAsItDidThen()
    {
        // test/Fixtures/models: a model trained and saved by commit 4bf0f28 (model version 0x00010003, key k as token k,
        // 1,001 tokens for a column of 1,000 keys) and the scores that version gave the rows beside it.
        string path = TestData.Path("models", "keys-v00010003.zip");
        var rows = File.ReadAllLines(TestData.Path("models", "keys-v00010003-scores.csv")).Skip(1).Select(line => line.Split(',')).Select(f => (
            Row: new TokenRow { Label = f[0], Tokens = f[1].Split(' ').Select(uint.Parse).ToArray() },
            Score: new[] { float.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), float.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture) })).ToArray();
        rows.Should().HaveCount(16);

        var ml = new MLContext(seed: 3);
        var model = ml.Model.Load(path, out _);
        try
        {
            var classifier = Classifier(model);
            classifier.InputType.KeyMap.Should().BeNull();
            classifier.Shape.Vocabulary.Should().Be(1001);
            var scored = model.Transform(ml.Data.LoadFromEnumerable(rows.Select(r => r.Row))).GetColumn<float[]>("Score").ToArray();
            var engine = ml.Model.CreatePredictionEngine<TokenRow, Scores>(model);
            for (int i = 0; i < rows.Length; i++)
            {
                scored[i].Should().Equal(rows[i].Score, (a, b) => Math.Abs(a - b) <= 1e-5f, $"row {i}");
                engine.Predict(rows[i].Row).Score.Should().Equal(rows[i].Score, (a, b) => Math.Abs(a - b) <= 1e-5f, $"row {i}");
            }
        }
        finally
        {
            Dispose(model);
        }
    }

    /// <summary>The classifier's model stream as version 0x00010001 wrote it: without the embedding column's id, the "no vocabulary" marker and the checksum trailer.</summary>
    private static byte[] AsVersion00010001(byte[] key)
    {
        const int Removed = 4 + 4 + 8 + 32 + 32;
        static long Field(byte[] bytes, int offset) => BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(offset));
        long block = Field(key, 0x10), size = Field(key, 0x18);
        BinaryPrimitives.ReadInt32LittleEndian(key.AsSpan((int)(block + size - Removed + 4))).Should().Be(-1, "a model without vocabulary records none");
        var bytes = key.Take((int)(block + size - Removed)).Concat(key.Skip((int)(block + size))).ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(0x18), size - Removed);
        foreach (int offset in new[] { 0x20, 0x30, 0x80, 0x88, 0x90 }) // string table, string chars, tail, lim, assembly name
        {
            long value = Field(bytes, offset);
            if (value != 0)
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(offset), value - Removed);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x48), 0x00010001); // written
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x4C), 0x00010001); // readable
        return bytes;
    }

    private static AuxLstmClassifierTransformer Classifier(ITransformer model) =>
        model as AuxLstmClassifierTransformer ?? ((IEnumerable<ITransformer>)model).OfType<AuxLstmClassifierTransformer>().Single();

    private static void Dispose(ITransformer model) => Classifier(model).Dispose();
}
