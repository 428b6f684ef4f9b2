using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.ML.Internal.Utilities;

namespace Microsoft.ML.AuxRnn.Model;

/// <summary>
/// SHA-256 checks of the parts an <see cref="AuxLstmClassifierTransformer"/> writes into a model file, and limits on
/// what a model file may declare before anything is read or extracted.
/// </summary>
/// <remarks>
/// Since model version 0x00010002 the classifier's model stream ends with a trailer:
/// <c>int64</c> length of the weights stream, its SHA-256 (32 bytes), then the SHA-256 (32 bytes) of everything
/// before it in the model stream's data block (settings, label keys, weights length and hash) followed by the
/// stream's string table (each string as an <c>int32</c> length and its UTF-16 code units): column names and text
/// label values live there. Loading checks the settings before parsing them and the weights before TorchSharp reads
/// them; a mismatch is an <see cref="InvalidDataException"/> naming the part.
/// </remarks>
internal static class ModelIntegrity
{
    public const int HashSize = 32;

    /// <summary>Weights length, weights hash, settings hash.</summary>
    public const int TrailerSize = sizeof(long) + HashSize + HashSize;

    /// <summary>Largest model data block (settings and label keys) a file may declare: 256 MiB.</summary>
    public const long MaxSettingsBytes = 256L << 20;

    /// <summary>The name a part is reported under.</summary>
    public static string SettingsPart => "the classifier's settings (its Model.key stream and string table)";

    public static string WeightsPart(string streamName) => $"the weights stream '{streamName}'";

    /// <summary>SHA-256 of <paramref name="stream"/>'s bytes [<paramref name="start"/>, <paramref name="end"/>) and of <paramref name="strings"/>, reading in small chunks.</summary>
    public static byte[] HashSettings(Stream stream, long start, long end, IEnumerable<ReadOnlyMemory<char>> strings)
    {
        if (!stream.CanSeek || !stream.CanRead)
            throw new InvalidOperationException("The model stream must be readable and seekable to be checksummed.");
        long restore = stream.Position;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        stream.Position = start;
        long left = end - start;
        while (left > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read <= 0)
                throw new EndOfStreamException();
            hash.AppendData(buffer, 0, read);
            left -= read;
        }
        Span<byte> length = stackalloc byte[sizeof(int)];
        foreach (var s in strings)
        {
            BinaryPrimitives.WriteInt32LittleEndian(length, s.Length);
            hash.AppendData(length);
            hash.AppendData(MemoryMarshal.AsBytes(s.Span));
        }
        stream.Position = restore;
        return hash.GetHashAndReset();
    }

    /// <summary>The strings of a save context's pool, in the order of their ids (the order of the string table).</summary>
    public static IEnumerable<ReadOnlyMemory<char>> StringsOf(NormStr.Pool pool) => pool.Select(s => s.Value);

    public static IEnumerable<ReadOnlyMemory<char>> StringsOf(string[]? strings) => (strings ?? Array.Empty<string>()).Select(s => s.AsMemory());

    /// <summary>
    /// Declared (uncompressed) and compressed size of the zip entry <paramref name="name"/> of the component being
    /// loaded, read from the zip's directory without extracting anything; null when the entry is absent or the
    /// context does not read a zip.
    /// </summary>
    public static (long Length, long CompressedLength)? DeclaredSize(ModelLoadContext ctx, string name)
    {
        if (!ctx.InRepository || ctx.Repository._entries is not { } entries)
            return null;
        string path = string.IsNullOrEmpty(ctx.Directory) ? name : Path.Combine(ctx.Directory, name);
        path = path.Replace('\\', Path.DirectorySeparatorChar).Replace('/', Path.DirectorySeparatorChar);
        if (!entries.TryGetValue(path, out var entry) && !entries.TryGetValue(path.Replace("/", "\\"), out entry))
            return null;
        return (entry.Length, entry.CompressedLength);
    }

    /// <summary>Throws unless the weights entry declares at most <paramref name="maxBytes"/> (exactly <paramref name="exact"/> when given).</summary>
    public static void CheckDeclaredWeightsSize(ModelLoadContext ctx, string name, long maxBytes, long? exact)
    {
        if (DeclaredSize(ctx, name) is not { } size)
            return;
        string? problem = size.Length < 0 ? "a negative size"
            : size.Length > maxBytes ? $"more: it is larger than its network's {maxBytes:N0} bytes allow"
            : exact is { } x && size.Length < x ? $"fewer than the {x:N0} the model records: it is truncated"
            : exact is { } y && size.Length > y ? $"more than the {y:N0} the model records: it is larger than saved"
            : null;
        if (problem != null)
            throw new InvalidDataException(
                $"The model's {WeightsPart(name)} declares {size.Length:N0} bytes ({size.CompressedLength:N0} compressed), {problem}; " +
                "the file is corrupt or crafted, and nothing of it was extracted.");
    }

    /// <summary>The error for a part whose SHA-256 differs from the one recorded; <paramref name="why"/> says what else is wrong with it, when known.</summary>
    public static InvalidDataException Mismatch(string part, string? why = null) =>
        new($"The model's {part} fails its SHA-256 check: the file is corrupt (damaged or edited since it was saved)" +
            (string.IsNullOrEmpty(why) ? "." : $"; {why}"));
}
