using Microsoft.ML.AuxRnn.Tests.Integration;

namespace Microsoft.ML.AuxRnn.Tests.Learning;

/// <summary>
/// A long-dependency task: the class is written once near the start of a sequence and echoed once after a cue in
/// its middle; everything else is filler, and the last <see cref="QuietTail"/> steps never carry the class.
/// </summary>
/// <remarks>
/// Tokens (the sequence's values, read with <c>InputLevels = </c><see cref="Levels"/>): 0 begins every row, 1 is
/// the cue, 2 .. 2 + classes − 1 are the class tokens, and the rest is filler. A row is
/// <c>[begin, class, filler…, cue, class, filler…]</c>, the cue at a random step of the middle. An LSTM whose
/// supervised gradient is truncated to the tail (fewer than <see cref="QuietTail"/> steps) sees filler only there, so
/// it is at chance unless something else teaches it to carry the class to the end: reconstructing the start from
/// any later anchor (r-LSTM) or predicting the echo after the cue (p-LSTM) does.
/// </remarks>
internal static class LongRecall
{
    public const int QuietTail = 16;


    public static int Levels(int classes, int fillers) => 2 + classes + fillers;

    /// <param name="rows">Rows (classes in turn, shuffled).</param>
    /// <param name="length">Steps per row (at least 24 + <see cref="QuietTail"/>).</param>
    /// <param name="classes">Classes.</param>
    /// <param name="fillers">Distinct filler tokens (1: a constant background, more: noise).</param>
    /// <param name="seed">Random seed.</param>
    /// <param name="echoes">How many times the class is echoed after a cue in the middle.</param>
    public static List<SequenceRow> Generate(int rows, int length, int classes, int fillers, int seed, int echoes = 1)
    {
        if (length < 24 + QuietTail)
            throw new ArgumentOutOfRangeException(nameof(length));
        var rng = new Random(seed);
        var list = new List<SequenceRow>(rows);
        for (int i = 0; i < rows; i++)
        {
            int label = i % classes;
            var x = new float[length];
            for (int t = 0; t < length; t++)
                x[t] = 2 + classes + rng.Next(fillers);
            x[0] = 0;
            x[1] = 2 + label;
            for (int e = 0; e < echoes; e++)
            {
                int cue = rng.Next(4, length - QuietTail - 1);
                x[cue] = 1;
                x[cue + 1] = 2 + label;
            }
            list.Add(new SequenceRow { Label = "c" + label, Features = x });
        }
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list));
        return list;
    }
}
