// Publicizer: copies assemblies with every type, method and field made public (private protected -> protected,
// so members can still be overridden), for compiling against ML.NET's internal extensibility surface.
// Usage: Publicizer <outputDir> <assembly.dll>...
// Output is skipped when it is newer than its input, so incremental builds stay fast.
using Mono.Cecil;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Publicizer <outputDir> <assembly.dll>...");
    return 2;
}

string outputDir = args[0];
Directory.CreateDirectory(outputDir);
var resolver = new DefaultAssemblyResolver();
foreach (string input in args.Skip(1))
    resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(input))!);

foreach (string input in args.Skip(1))
{
    string output = Path.Combine(outputDir, Path.GetFileName(input));
    if (File.Exists(output) && File.GetLastWriteTimeUtc(output) >= File.GetLastWriteTimeUtc(input))
        continue;

    using var assembly = AssemblyDefinition.ReadAssembly(input, new ReaderParameters { AssemblyResolver = resolver });
    foreach (TypeDefinition type in assembly.Modules.SelectMany(m => m.GetTypes()))
    {
        if (type.IsNested)
            type.IsNestedPublic = true;
        else
            type.IsPublic = true;

        foreach (MethodDefinition method in type.Methods)
        {
            // private protected (FamANDAssem) becomes protected, so overrides in other assemblies stay legal.
            if (method.IsFamilyAndAssembly)
                method.IsFamily = true;
            else if (!method.IsFamily)
                method.IsPublic = true;
        }

        foreach (FieldDefinition field in type.Fields)
        {
            // Compiler-generated backing fields would clash with their properties' names in C#.
            if (type.Events.Any(e => e.Name == field.Name))
                continue;
            if (field.IsFamilyAndAssembly)
                field.IsFamily = true;
            else if (!field.IsFamily)
                field.IsPublic = true;
        }
    }

    string temp = output + ".tmp";
    assembly.Write(temp);
    File.Move(temp, output, overwrite: true);
    Console.WriteLine($"Publicized {Path.GetFileName(input)} -> {output}");
}
return 0;
