using System.Globalization;
using System.Reflection;
using System.Text;
using System.Xml.Linq;

namespace Microsoft.ML.AuxRnn.Cli;

/// <summary>
/// Maps command-line options one to one onto <see cref="AuxLstmClassifierOptions"/>: every settable member of a
/// simple type is an option named in kebab case (<c>HiddenSize</c> → <c>--hidden-size</c>). Nullable integers take
/// <c>none</c> for null (<c>--truncation-length none</c> = full backpropagation through time); enums take their
/// names, case-insensitively; booleans may be given alone; durations take seconds or a unit (<c>90s</c>, <c>5m</c>,
/// <c>1.5h</c>) or hh:mm:ss.
/// </summary>
internal static class OptionsBinder
{
    /// <summary>Members that name columns or hold objects: set by the command, not from the command line.</summary>
    private static readonly HashSet<string> NotBound = new()
    {
        nameof(AuxLstmClassifierOptions.LabelColumnName), nameof(AuxLstmClassifierOptions.SequenceColumnName),
        nameof(AuxLstmClassifierOptions.PredictedLabelColumnName), nameof(AuxLstmClassifierOptions.ScoreColumnName),
        nameof(AuxLstmClassifierOptions.EmbeddingColumnName),
        nameof(AuxLstmClassifierOptions.ValidationSet), nameof(AuxLstmClassifierOptions.CancellationToken),
    };

    public static IReadOnlyList<PropertyInfo> Members { get; } = typeof(AuxLstmClassifierOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && !NotBound.Contains(p.Name) && IsSimple(p.PropertyType))
        .ToArray();

    public static IReadOnlySet<string> BooleanOptionNames { get; } =
        Members.Where(p => p.PropertyType == typeof(bool)).Select(p => Kebab(p.Name)).ToHashSet(StringComparer.OrdinalIgnoreCase);

    public static string Kebab(string name)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
                sb.Append('-');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        return sb.ToString();
    }

    /// <summary>Sets every member named on the command line; returns the names set (in kebab case).</summary>
    public static List<string> Bind(CommandLine line, AuxLstmClassifierOptions options)
    {
        var set = new List<string>();
        foreach (var member in Members)
        {
            string name = Kebab(member.Name);
            string? text = line.String(name);
            if (text == null)
                continue;
            member.SetValue(options, Convert(text, member.PropertyType, name));
            set.Add(name);
        }
        return set;
    }

    public static object? Convert(string text, Type type, string name)
    {
        Type? inner = Nullable.GetUnderlyingType(type);
        if (inner != null)
        {
            if (text.Equals("none", StringComparison.OrdinalIgnoreCase) || text.Equals("null", StringComparison.OrdinalIgnoreCase)
                || text.Equals("full", StringComparison.OrdinalIgnoreCase))
                return null;
            type = inner;
        }

        if (type == typeof(string))
            return text;
        if (type == typeof(int))
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i
                : throw new UsageException($"--{name} takes a whole number{(inner != null ? " or 'none'" : "")}, not '{text}'.");
        if (type == typeof(double))
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d
                : throw new UsageException($"--{name} takes a number, not '{text}'.");
        if (type == typeof(bool))
            return bool.TryParse(text, out bool b) ? b : throw new UsageException($"--{name} takes true or false, not '{text}'.");
        if (type == typeof(TimeSpan))
            return ParseDuration(text) ?? throw new UsageException($"--{name} takes a duration (90s, 5m, 1.5h or hh:mm:ss){(inner != null ? " or 'none'" : "")}, not '{text}'.");
        if (type.IsEnum)
        {
            if (Enum.TryParse(type, text.Replace("-", ""), ignoreCase: true, out object? value) && Enum.IsDefined(type, value!))
                return value;
            throw new UsageException($"--{name} takes one of {string.Join(", ", Enum.GetNames(type).Select(n => n.ToLowerInvariant()))}, not '{text}'.");
        }
        throw new InvalidOperationException($"No conversion for {type}.");
    }

    /// <summary>(option, type, default, description) for the help text; descriptions come from the library's XML docs.</summary>
    public static IEnumerable<(string Option, string Values, string Default, string Description)> Describe()
    {
        var defaults = new AuxLstmClassifierOptions();
        var docs = LoadDocs();
        foreach (var member in Members)
        {
            Type type = Nullable.GetUnderlyingType(member.PropertyType) ?? member.PropertyType;
            string values = type.IsEnum ? string.Join("|", Enum.GetNames(type).Select(n => n.ToLowerInvariant()))
                : type == typeof(int) ? "N" : type == typeof(double) ? "X" : type == typeof(bool) ? "true|false" : type == typeof(TimeSpan) ? "DURATION" : "TEXT";
            if (Nullable.GetUnderlyingType(member.PropertyType) != null)
                values += "|none";
            object? value = member.GetValue(defaults);
            string shown = value switch
            {
                null => "none",
                double d => d.ToString(CultureInfo.InvariantCulture),
                Enum e => e.ToString().ToLowerInvariant(),
                bool b => b ? "true" : "false",
                TimeSpan t => t.ToString("c", CultureInfo.InvariantCulture),
                _ => System.Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
            };
            docs.TryGetValue(member.Name, out string? description);
            yield return ("--" + Kebab(member.Name), values, shown, description ?? "");
        }
    }

    private static bool IsSimple(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type == typeof(int) || type == typeof(double) || type == typeof(bool) || type == typeof(string) || type == typeof(TimeSpan) || type.IsEnum;
    }

    private static TimeSpan? ParseDuration(string text)
    {
        text = text.Trim();
        double scale = text.EndsWith('h') ? 3600 : text.EndsWith('m') ? 60 : 1;
        string number = text.TrimEnd('h', 'm', 's');
        if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value >= 0 && double.IsFinite(value))
            return TimeSpan.FromSeconds(value * scale);
        return text.Contains(':') && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) ? span : null;
    }

    private static Dictionary<string, string> LoadDocs()
    {
        var result = new Dictionary<string, string>();
        string xml = Path.ChangeExtension(typeof(AuxLstmClassifierOptions).Assembly.Location, ".xml");
        if (!File.Exists(xml))
            return result;
        try
        {
            string prefix = "P:" + typeof(AuxLstmClassifierOptions).FullName + ".";
            foreach (var member in XDocument.Load(xml).Descendants("member"))
            {
                string? name = member.Attribute("name")?.Value;
                if (name == null || !name.StartsWith(prefix, StringComparison.Ordinal))
                    continue;
                var summary = member.Element("summary");
                if (summary == null)
                    continue;
                string text = string.Concat(summary.Nodes().Select(n => n is XElement e ? (e.Attribute("cref")?.Value.Split('.').Last() ?? e.Value) : n.ToString()));
                result[name[prefix.Length..]] = System.Net.WebUtility.HtmlDecode(string.Join(" ", text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)));
            }
        }
        catch (System.Xml.XmlException)
        {
        }
        return result;
    }
}
