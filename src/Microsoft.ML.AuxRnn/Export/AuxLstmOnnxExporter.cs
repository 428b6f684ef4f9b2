using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.Data;
using Microsoft.ML.Model.OnnxConverter;

namespace Microsoft.ML.AuxRnn.Export;

/// <summary>
/// Writes a trained AuxLstm classifier into the ONNX graph that ML.NET's <c>mlContext.Model.ConvertToOnnx</c> is
/// building (called through the transformer's row mapper, which implements ML.NET's <c>ISaveAsOnnx</c>).
/// </summary>
/// <remarks>
/// The graph, for a sequence column X of B rows (ONNX Runtime and ML.NET's <c>ApplyOnnxModel</c> score one row
/// at a time when the column has a variable size; rows of a known size can be batched):
/// <list type="number">
/// <item>input encoder: tokens (keys, or float levels) → Cast int64 → for keys, <c>Gather</c> from the model's key →
/// token lookup table (its <see cref="KeyVocabulary"/>: an int64 initializer of key count + 1 entries, unseen keys → the
/// unknown token) → <c>Gather</c> from the embedding table;
/// values → Reshape (B, T, StepSize) → <c>Sub</c> mean, <c>Div</c> scale (the standardisation saved with the model)
/// → <c>MatMul</c> + <c>Add</c> (the linear projection);</item>
/// <item>Transpose to (T, B, E) and the ONNX <c>LSTM</c> operator, its weights re-ordered from PyTorch's gate
/// order i, f, g, o to ONNX's i, o, f, c, biases Wb and Rb concatenated, and <c>sequence_lens</c> = each row's
/// number of steps (all rows of an ONNX tensor have the same length: a row is its own tensor when lengths vary);</item>
/// <item>the final hidden state Y_h → (B, H): the embedding column, when the model has one;</item>
/// <item>the classifier: <c>Gemm</c> → <c>Relu</c> → <c>Gemm</c> → <c>Relu</c> → <c>Gemm</c> (DropConnect acts at
/// training only), <c>Softmax</c> → Score;</item>
/// <item><c>ArgMax</c> + 1, cast to the label's key type → PredictedLabel.</item>
/// </list>
/// Every output keeps the ML.NET column's name.
/// </remarks>
internal static class AuxLstmOnnxExporter
{
    /// <summary>The lowest opset whose operators (LSTM with sequence_lens, Expand, Gather, ArgMax) mean what the graph needs.</summary>
    public const int MinimumOpSet = 9;

    public static void Save(OnnxContext ctx, AuxLstmClassifierTransformer model, NetworkWeights w)
    {
        var shape = model.Shape;
        var input = model.InputType;
        int h = shape.HiddenSize, e = shape.EmbeddingSize, c = shape.ClassifierHiddenSize, k = shape.ClassCount;
        string prefix = "AuxLstm";
        string Temp(string name) => ctx.AddIntermediateVariable(null!, prefix + name, true);
        string Node(string op, string[] inputs, string output)
        {
            ctx.CreateNode(op, inputs, new[] { output }, ctx.GetNodeName(prefix + op), "");
            return output;
        }
        string Floats(string name, float[] values, params long[] dims) => ctx.AddInitializer(values, dims, prefix + name, true);
        string Longs(string name, long[] values, params long[] dims) => ctx.AddInitializer(values, dims, prefix + name, true);

        string x = ctx.GetVariableName(model.SequenceColumnName);

        // 1. Input encoder: (B, N) → (B, T, E).
        string encoded;
        if (shape.Discrete)
        {
            string tokens = Temp("Tokens");
            var cast = ctx.CreateNode("Cast", new[] { x }, new[] { tokens }, ctx.GetNodeName(prefix + "Cast"), "");
            cast.AddAttribute("to", typeof(long));
            if (input.KeyMap is { } keyMap)
            {
                // Keys → dense tokens, as SequenceRowReader maps them when ML.NET scores.
                long[] lookup = keyMap.LookupTable();
                string mapped = Temp("DenseTokens");
                Gather(ctx, prefix, Longs("KeyToToken", lookup, lookup.Length), tokens, mapped);
                tokens = mapped;
            }
            string table = Floats("EmbeddingTable", w.Embedding, shape.Vocabulary, e);
            encoded = Temp("Embedded");
            var gather = ctx.CreateNode("Gather", new[] { table, tokens }, new[] { encoded }, ctx.GetNodeName(prefix + "Gather"), "");
            gather.AddAttribute("axis", 0L);
        }
        else
        {
            int s = shape.StepSize;
            string steps = Node("Reshape", new[] { x, Longs("StepShape", new long[] { 0, -1, s }, 3) }, Temp("Steps"));
            // The model's input standardisation, (x − mean) / scale per value of a step, from the training data.
            steps = Node("Sub", new[] { steps, Floats("InputMean", w.InputMean, s) }, Temp("Centered"));
            steps = Node("Div", new[] { steps, Floats("InputScale", w.InputScale, s) }, Temp("Standardized"));
            var projectionT = Transpose(w.Projection, e, s); // (E, S) → (S, E)
            string projected = Node("MatMul", new[] { steps, Floats("Projection", projectionT, s, e) }, Temp("Projected"));
            encoded = Node("Add", new[] { projected, Floats("ProjectionBias", w.ProjectionBias, e) }, Temp("Encoded"));
        }

        // 2. sequence_lens: each row's steps, T, for the B rows of the tensor.
        string dims = Node("Shape", new[] { encoded }, Temp("EncodedShape"));
        string length = Gather(ctx, prefix, dims, Longs("LengthAxis", new long[] { 1 }, 1), Temp("Length"));
        string rows = Gather(ctx, prefix, dims, Longs("RowAxis", new long[] { 0 }, 1), Temp("Rows"));
        string lengths64 = Node("Expand", new[] { length, rows }, Temp("Lengths64"));
        string lengths = Temp("Lengths");
        ctx.CreateNode("Cast", new[] { lengths64 }, new[] { lengths }, ctx.GetNodeName(prefix + "Cast"), "").AddAttribute("to", typeof(int));

        // 3. The LSTM over (T, B, E), gates re-ordered i, f, g, o → i, o, f, c.
        string timeMajor = Temp("TimeMajor");
        ctx.CreateNode("Transpose", new[] { encoded }, new[] { timeMajor }, ctx.GetNodeName(prefix + "Transpose"), "").AddAttribute("perm", new long[] { 1, 0, 2 });
        string wIn = Floats("LstmW", ReorderGates(w.LstmInput, h, e), 1, 4L * h, e);
        string wRec = Floats("LstmR", ReorderGates(w.LstmHidden, h, h), 1, 4L * h, h);
        string bias = Floats("LstmB", ReorderGates(w.LstmInputBias, h, 1).Concat(ReorderGates(w.LstmHiddenBias, h, 1)).ToArray(), 1, 8L * h);
        string finalH = Temp("FinalHidden3");
        var lstm = ctx.CreateNode("LSTM", new[] { timeMajor, wIn, wRec, bias, lengths }, new[] { Temp("AllHidden"), finalH },
            ctx.GetNodeName(prefix + "LSTM"), "");
        lstm.AddAttribute("hidden_size", (long)h);
        lstm.AddAttribute("direction", "forward");
        string final = Node("Reshape", new[] { finalH, Longs("HiddenShape", new long[] { -1, h }, 2) }, Temp("FinalHidden"));

        // 4. Embedding column.
        if (model.EmbeddingColumnName is { } embeddingColumn)
        {
            string embedding = ctx.AddIntermediateVariable(new VectorDataViewType(NumberDataViewType.Single, h), embeddingColumn, false);
            Node("Identity", new[] { final }, embedding);
        }

        // 5. Classifier (evaluation mode: DropConnect is training-only) and softmax.
        string h1 = Node("Relu", new[] { Gemm(ctx, prefix, final, Floats("Fc1", w.Fc1, c, h), Floats("Fc1Bias", w.Fc1Bias, c), Temp("Fc1Out")) }, Temp("Fc1Relu"));
        string h2 = Node("Relu", new[] { Gemm(ctx, prefix, h1, Floats("Fc2", w.Fc2, c, c), Floats("Fc2Bias", w.Fc2Bias, c), Temp("Fc2Out")) }, Temp("Fc2Relu"));
        string logits = Gemm(ctx, prefix, h2, Floats("Out", w.Out, k, c), Floats("OutBias", w.OutBias, k), Temp("Logits"));
        string score = ctx.AddIntermediateVariable(new VectorDataViewType(NumberDataViewType.Single, k), model.ScoreColumnName, false);
        ctx.CreateNode("Softmax", new[] { logits }, new[] { score }, ctx.GetNodeName(prefix + "Softmax"), "").AddAttribute("axis", 1L);

        // 6. PredictedLabel: the first most probable class, as a 1-based key of the label's raw type.
        string argMax = Temp("ArgMax");
        var argMaxNode = ctx.CreateNode("ArgMax", new[] { score }, new[] { argMax }, ctx.GetNodeName(prefix + "ArgMax"), "");
        argMaxNode.AddAttribute("axis", 1L);
        argMaxNode.AddAttribute("keepdims", 1L);
        string key64 = Node("Add", new[] { argMax, Longs("One", new long[] { 1 }, 1) }, Temp("Key64"));
        string predicted = ctx.AddIntermediateVariable(model.Labels.KeyType, model.PredictedLabelColumnName, false);
        ctx.CreateNode("Cast", new[] { key64 }, new[] { predicted }, ctx.GetNodeName(prefix + "Cast"), "").AddAttribute("to", model.Labels.KeyType.RawType);
    }

    private static string Gather(OnnxContext ctx, string prefix, string data, string index, string output)
    {
        ctx.CreateNode("Gather", new[] { data, index }, new[] { output }, ctx.GetNodeName(prefix + "Gather"), "").AddAttribute("axis", 0L);
        return output;
    }

    private static string Gemm(OnnxContext ctx, string prefix, string x, string weight, string bias, string output)
    {
        var node = ctx.CreateNode("Gemm", new[] { x, weight, bias }, new[] { output }, ctx.GetNodeName(prefix + "Gemm"), "");
        node.AddAttribute("transB", 1L);
        return output;
    }

    /// <summary>(rows, cols) → (cols, rows), row-major.</summary>
    private static float[] Transpose(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int col = 0; col < cols; col++)
                t[col * rows + r] = m[r * cols + col];
        }
        return t;
    }

    /// <summary>
    /// (4H, width) blocks in PyTorch's gate order i, f, g, o → ONNX's i, o, f, c (c being PyTorch's g).
    /// </summary>
    internal static float[] ReorderGates(float[] weights, int hidden, int width)
    {
        int block = hidden * width;
        if (weights.Length != 4 * block)
            throw new ArgumentException($"Expected {4 * block} LSTM weights, found {weights.Length}.", nameof(weights));
        var result = new float[weights.Length];
        int[] from = { 0, 3, 1, 2 }; // ONNX block j takes PyTorch block from[j]
        for (int j = 0; j < 4; j++)
            Array.Copy(weights, from[j] * block, result, j * block, block);
        return result;
    }
}
