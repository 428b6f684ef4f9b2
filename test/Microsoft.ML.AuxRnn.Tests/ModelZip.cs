using System.IO.Compression;

namespace Microsoft.ML.AuxRnn.Tests;

/// <summary>Reads ML.NET model zips entry by entry (zip timestamps differ between saves; entries must not).</summary>
internal static class ModelZip
{
    public static Dictionary<string, byte[]> Entries(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        return archive.Entries.ToDictionary(e => e.FullName, e =>
        {
            using var stream = e.Open();
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            return buffer.ToArray();
        });
    }
}
