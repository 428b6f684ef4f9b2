using System.Runtime.CompilerServices;
using Microsoft.ML.AuxRnn;
using Microsoft.ML.AuxRnn.Runtime;
using Microsoft.ML.AuxRnn.Transforms;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>
/// The public door of Microsoft.ML.AuxRnn: extension methods on <see cref="TransformsCatalog"/>
/// (<c>mlContext.Transforms.…</c>) and on the multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers.AuxLstm</c>).
/// </summary>
public static class AuxLstmCatalog
{
    // ---- AuxLstmClassifier (classifier estimator) ----

    /// <summary>
    /// An LSTM classifier for long sequences trained with an auxiliary loss (r-LSTM or p-LSTM; Trinh et al., ICML 2018).
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="options">Every option; invalid values throw <see cref="ArgumentOutOfRangeException"/> naming the member.</param>
    /// <returns>An estimator whose transformer adds PredictedLabel (the label's key type) and Score (class probabilities).</returns>
    public static AuxLstmClassifierEstimator AuxLstmClassifier(this TransformsCatalog catalog, AuxLstmClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        MLNetVersionGuard.Check();
        return NewClassifier(catalog, options);
    }

    // The guard runs before these are compiled: they use ML.NET internals, which another ML.NET release may lack.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static AuxLstmClassifierEstimator NewClassifier(TransformsCatalog catalog, AuxLstmClassifierOptions options) =>
        new(CatalogUtils.GetEnvironment(catalog), options);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static AuxLstmClassifierEstimator NewClassifier(MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog, AuxLstmClassifierOptions options) =>
        new(CatalogUtils.GetEnvironment(catalog), options);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ImageToPixelSequenceEstimator NewImageToPixelSequence(TransformsCatalog catalog, PixelChannels channels, int? permutationSeed,
        string outputColumnName, string inputColumnName) =>
        new(CatalogUtils.GetEnvironment(catalog), channels, permutationSeed, (outputColumnName, inputColumnName));

    /// <summary>
    /// An LSTM classifier for long sequences trained with an auxiliary loss, with default options otherwise.
    /// </summary>
    /// <param name="catalog">The transforms catalog (<c>mlContext.Transforms</c>).</param>
    /// <param name="labelColumnName">The label: a key column (e.g. from <c>MapValueToKey</c>).</param>
    /// <param name="sequenceColumnName">The sequence: a vector of Single (one value per step) or of keys (tokens).</param>
    /// <param name="auxiliaryLoss">r-LSTM (<see cref="AuxiliaryLoss.Reconstruct"/>), p-LSTM (<see cref="AuxiliaryLoss.Predict"/>) or none.</param>
    /// <returns>An estimator whose transformer adds PredictedLabel and Score.</returns>
    public static AuxLstmClassifierEstimator AuxLstmClassifier(this TransformsCatalog catalog,
        string labelColumnName = DefaultColumnNames.Label,
        string sequenceColumnName = DefaultColumnNames.Features,
        AuxiliaryLoss auxiliaryLoss = AuxiliaryLoss.Reconstruct)
        => AuxLstmClassifier(catalog, new AuxLstmClassifierOptions
        {
            LabelColumnName = labelColumnName,
            SequenceColumnName = sequenceColumnName,
            AuxiliaryLoss = auxiliaryLoss,
        });

    // ---- AuxLstm (the same estimator, where ML.NET users look for a trainer) ----

    /// <summary>
    /// An LSTM classifier for long sequences trained with an auxiliary loss (r-LSTM or p-LSTM; Trinh et al., ICML 2018):
    /// the estimator <see cref="AuxLstmClassifier(TransformsCatalog, AuxLstmClassifierOptions)"/> gives, under the
    /// multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers.AuxLstm(...)</c>), so it works with
    /// <c>mlContext.MulticlassClassification.CrossValidate</c> and the other multiclass tools.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers</c>).</param>
    /// <param name="options">Every option; invalid values throw <see cref="ArgumentOutOfRangeException"/> naming the member.</param>
    /// <returns>An estimator whose transformer adds PredictedLabel (the label's key type) and Score (class probabilities).</returns>
    public static AuxLstmClassifierEstimator AuxLstm(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        AuxLstmClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        MLNetVersionGuard.Check();
        return NewClassifier(catalog, options);
    }

    /// <summary>
    /// An LSTM classifier for long sequences trained with an auxiliary loss, with the most used options as arguments
    /// and the defaults of <see cref="AuxLstmClassifierOptions"/> otherwise.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog (<c>mlContext.MulticlassClassification.Trainers</c>).</param>
    /// <param name="labelColumnName">The label: a key column (e.g. from <c>MapValueToKey</c>).</param>
    /// <param name="sequenceColumnName">The sequence: a vector of Single (one value per step) or of keys (tokens).</param>
    /// <param name="auxiliaryLoss">r-LSTM (<see cref="AuxiliaryLoss.Reconstruct"/>), p-LSTM (<see cref="AuxiliaryLoss.Predict"/>) or none.</param>
    /// <param name="truncationLength">Steps the label's gradient flows back from each row's end; null: full backpropagation.</param>
    /// <param name="epochs">Epochs of joint training.</param>
    /// <param name="batchSize">Sequences per mini-batch.</param>
    /// <param name="validationSet">Held-out data scored every epoch; the best epoch is kept.</param>
    /// <returns>An estimator whose transformer adds PredictedLabel and Score.</returns>
    public static AuxLstmClassifierEstimator AuxLstm(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = DefaultColumnNames.Label,
        string sequenceColumnName = DefaultColumnNames.Features,
        AuxiliaryLoss auxiliaryLoss = AuxiliaryLoss.Reconstruct,
        int? truncationLength = 300,
        int epochs = 10,
        int batchSize = 128,
        IDataView? validationSet = null)
        => AuxLstm(catalog, new AuxLstmClassifierOptions
        {
            LabelColumnName = labelColumnName,
            SequenceColumnName = sequenceColumnName,
            AuxiliaryLoss = auxiliaryLoss,
            TruncationLength = truncationLength,
            Epochs = epochs,
            BatchSize = batchSize,
            ValidationSet = validationSet,
        });

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
        MLNetVersionGuard.Check();
        return NewImageToPixelSequence(catalog, channels, permutationSeed, outputColumnName, inputColumnName ?? outputColumnName);
    }
}
