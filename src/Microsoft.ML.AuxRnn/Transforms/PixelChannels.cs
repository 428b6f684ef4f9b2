namespace Microsoft.ML.AuxRnn;

/// <summary>What each step of a pixel sequence holds; the value is the number of values per step (<c>StepSize</c>).</summary>
public enum PixelChannels
{
    /// <summary>One value per pixel: its grey level 0..255 (0.3 R + 0.59 G + 0.11 B, rounded, as ML.NET's <c>ConvertToGrayscale</c>).</summary>
    Grey = 1,

    /// <summary>Three values per pixel, interleaved: red, green, blue (each 0..255). Use <c>StepSize = 3</c>.</summary>
    Rgb = 3,
}
