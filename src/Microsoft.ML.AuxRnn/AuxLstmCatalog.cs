using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Transforms;
using Microsoft.ML.Data;

namespace Microsoft.ML;

/// <summary>
/// The public door of Microsoft.ML.AuxRnn: extension methods on <see cref="TransformsCatalog"/>
/// (<c>mlContext.Transforms.…</c>).
/// </summary>
public static class AuxLstmCatalog
{
    // ---- AuxLstmClassifier (classifier estimator) ----

    // ---- ImageToPixelSequence (pixel-sequence featurizer) ----

    /// <summary>
    /// Reads an image column (from <c>LoadImages</c>, usually after <c>ResizeImages</c>) as a pixel sequence for
    /// <c>AuxLstmClassifier</c>: a vector of <see cref="float"/> values 0..255, pixels in row-major order (or in the
    /// fixed order of a seeded permutation), one grey value or three interleaved R, G, B values per step.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The pixel-sequence column to create.</param>
    /// <param name="inputColumnName">The image column (default: <paramref name="outputColumnName"/>).</param>
    /// <param name="channels">
    /// <see cref="PixelChannels.Grey"/> (default: 1 value per step; set <c>InputLevels = 256</c> to embed the levels as
    /// the paper does) or <see cref="PixelChannels.Rgb"/> (3 values per step: set <c>StepSize = 3</c>).
    /// </param>
    /// <param name="permutationSeed">
    /// Permuted pixel order (permuted MNIST): the permutation <see cref="Microsoft.ML.AuxRnn.Datasets.PixelPermutation.Create"/>
    /// gives for this seed, saved with the model. Null (default): row-major order.
    /// </param>
    public static ImageToPixelSequenceEstimator ImageToPixelSequence(this TransformsCatalog catalog, string outputColumnName,
        string? inputColumnName = null, PixelChannels channels = PixelChannels.Grey, int? permutationSeed = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        return new ImageToPixelSequenceEstimator(CatalogUtils.GetEnvironment(catalog), channels, permutationSeed,
            (outputColumnName, inputColumnName ?? outputColumnName));
    }
}
