using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.AuxRnn.Datasets;

/// <summary>
/// Reads LeCun's idx format (MNIST, Fashion-MNIST, KMNIST): a big-endian magic number 0x0000TTDD (TT = 0x08 for
/// unsigned bytes, DD = number of dimensions), DD big-endian 32-bit sizes, then the data. Gzip is detected from the
/// file's first bytes, not its name.
/// </summary>
internal static class IdxFile
{
    public sealed record Content(int[] Dimensions, byte[] Data);

    /// <summary>Reads an idx file of unsigned bytes with <paramref name="dimensions"/> dimensions; the file is named in every error.</summary>
    public static Content ReadBytes(string path, int dimensions, string what)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The MNIST {what} file '{path}' does not exist.", path);

        byte[] bytes = ReadAllMaybeGzip(path);
        int expectedMagic = 0x0800 | dimensions;
        if (bytes.Length < 4)
            throw new InvalidDataException($"'{path}' is not an idx {what} file: it is only {bytes.Length} bytes long.");
        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != expectedMagic)
            throw new InvalidDataException(
                $"'{path}' is not an idx {what} file: its magic number is 0x{magic:X8}, expected 0x{expectedMagic:X8} " +
                $"(unsigned bytes, {dimensions} dimension{(dimensions == 1 ? "" : "s")}).");

        int headerLength = 4 + 4 * dimensions;
        if (bytes.Length < headerLength)
            throw new InvalidDataException($"'{path}' is truncated: its header needs {headerLength} bytes, the file has {bytes.Length}.");
        var sizes = new int[dimensions];
        long total = 1;
        for (int d = 0; d < dimensions; d++)
        {
            sizes[d] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d));
            if (sizes[d] < 0)
                throw new InvalidDataException($"'{path}' declares a negative size ({sizes[d]}) for dimension {d}.");
            total *= sizes[d];
        }

        long available = bytes.Length - headerLength;
        if (available < total)
            throw new InvalidDataException(
                $"'{path}' is truncated: its header declares {string.Join(" x ", sizes)} = {total:N0} bytes of data, the file holds {available:N0}.");
        if (available > total)
            throw new InvalidDataException(
                $"'{path}' has {available - total:N0} bytes after the {string.Join(" x ", sizes)} values its header declares: not an idx file, or a damaged one.");
        return new Content(sizes, bytes.AsSpan(headerLength).ToArray());
    }

    private static byte[] ReadAllMaybeGzip(string path)
    {
        using var file = File.OpenRead(path);
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        if (b0 != 0x1f || b1 != 0x8b)
        {
            var plain = new MemoryStream();
            file.CopyTo(plain);
            return plain.ToArray();
        }

        var output = new MemoryStream();
        try
        {
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            gzip.CopyTo(output);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new InvalidDataException($"'{path}' is a damaged or truncated gzip file: {e.Message}", e);
        }
        return output.ToArray();
    }
}
