using Microsoft.ML.AuxRnn;

namespace Microsoft.ML;

/// <summary>
/// The public door of Microsoft.ML.AuxRnn: extension methods on <see cref="TransformsCatalog"/>
/// (<c>mlContext.Transforms.…</c>).
/// </summary>
public static class AuxLstmCatalog
{
    // ---- AuxLstmClassifier (classifier estimator) ----

    // ---- ImageToPixelSequence (pixel-sequence featurizer) ----
}
