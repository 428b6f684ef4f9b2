namespace Microsoft.ML.AuxRnn.Datasets;

/// <summary>
/// The fixed pixel permutation of "permuted MNIST": one shuffle of the pixel positions, drawn from a seed with a
/// generator of this library's own (SplitMix64 + Fisher–Yates), so the same seed gives the same permutation on every
/// machine and .NET version. The idx/CIFAR loaders and <c>ImageToPixelSequence</c> share it: a model trained on
/// <see cref="AuxRnnDatasets.LoadMnist"/> with seed s scores PNG files read with <c>ImageToPixelSequence</c> and seed s.
/// </summary>
public static class PixelPermutation
{
    /// <summary>
    /// The permutation of <paramref name="length"/> positions for <paramref name="seed"/>: step t of the permuted
    /// sequence is pixel <c>result[t]</c> of the row-major scan.
    /// </summary>
    public static int[] Create(int seed, int length)
    {
        if (length < 0)
            throw new ArgumentOutOfRangeException(nameof(length), length, "The number of pixels must not be negative.");
        var order = new int[length];
        for (int i = 0; i < length; i++)
            order[i] = i;
        ulong state = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + 0x2545F4914F6CDD1DUL);
        for (int i = length - 1; i > 0; i--)
        {
            int j = (int)(Next(ref state) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    private static ulong Next(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
