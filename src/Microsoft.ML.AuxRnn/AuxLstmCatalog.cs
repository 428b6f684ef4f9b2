using Microsoft.ML.AuxRnn;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>
/// The public door of Microsoft.ML.AuxRnn: extension methods on <see cref="TransformsCatalog"/>
/// (<c>mlContext.Transforms.…</c>).
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
        Contracts.CheckValue(catalog, nameof(catalog));
        return new AuxLstmClassifierEstimator(CatalogUtils.GetEnvironment(catalog), options);
    }

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

    // ---- ImageToPixelSequence (pixel-sequence featurizer) ----
}
