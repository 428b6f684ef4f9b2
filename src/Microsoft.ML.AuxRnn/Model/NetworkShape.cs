namespace Microsoft.ML.AuxRnn.Model;

/// <summary>Everything needed to rebuild an <see cref="AuxLstmNetwork"/> before loading its weights.</summary>
internal sealed record NetworkShape(
    bool Discrete,
    int Vocabulary,
    int StepSize,
    int EmbeddingSize,
    int HiddenSize,
    int ClassifierHiddenSize,
    int ClassCount,
    AuxiliaryLoss AuxiliaryLoss,
    double DropConnect)
{
    /// <summary>Largest size accepted when a shape is read from a file (guards against absurd allocations).</summary>
    public const int MaxDimension = 65_536;

    public static NetworkShape From(AuxLstmClassifierOptions options, bool discrete, int vocabulary, int stepSize, int classCount) =>
        new(discrete, vocabulary, stepSize, options.EmbeddingSize, options.HiddenSize, options.ClassifierHiddenSize,
            classCount, options.AuxiliaryLoss, options.DropConnect);

    public void Write(BinaryWriter writer)
    {
        writer.Write(Discrete);
        writer.Write(Vocabulary);
        writer.Write(StepSize);
        writer.Write(EmbeddingSize);
        writer.Write(HiddenSize);
        writer.Write(ClassifierHiddenSize);
        writer.Write(ClassCount);
        writer.Write((int)AuxiliaryLoss);
        writer.Write(DropConnect);
    }

    /// <summary>Reads a shape and checks every size before anything is allocated from it.</summary>
    public static NetworkShape Read(BinaryReader reader)
    {
        var shape = new NetworkShape(reader.ReadBoolean(), reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(),
            reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(), (AuxiliaryLoss)reader.ReadInt32(), reader.ReadDouble());
        shape.Check();
        return shape;
    }

    public void Check()
    {
        static void InRange(int value, int min, int max, string what)
        {
            if (value < min || value > max)
                throw new InvalidDataException($"The model's {what} is {value}; expected {min}..{max}. The file is corrupt or not an AuxLstm model.");
        }

        InRange(Vocabulary, Discrete ? 1 : 0, Discrete ? 16_777_216 : 0, "vocabulary size");
        InRange(StepSize, 1, 1_000_000, "step size");
        InRange(EmbeddingSize, 1, MaxDimension, "embedding size");
        InRange(HiddenSize, 1, MaxDimension, "hidden size");
        InRange(ClassifierHiddenSize, 1, MaxDimension, "classifier hidden size");
        InRange(ClassCount, 2, 1_000_000, "class count");
        if (!Enum.IsDefined(AuxiliaryLoss))
            throw new InvalidDataException($"The model's auxiliary loss {(int)AuxiliaryLoss} is unknown.");
        if (!(DropConnect >= 0 && DropConnect < 1))
            throw new InvalidDataException($"The model's DropConnect probability {DropConnect} is out of range.");
        long parameters = 4L * HiddenSize * (HiddenSize + EmbeddingSize) + (long)(Discrete ? Vocabulary : StepSize) * EmbeddingSize;
        if (parameters > 2_000_000_000L)
            throw new InvalidDataException($"The model would need {parameters:N0} parameters; the file is corrupt.");
    }
}
