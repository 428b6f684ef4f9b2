using System.Globalization;

namespace Microsoft.ML.AuxRnn.Cli;

/// <summary>A command line error: the message is shown to the user as is, with exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The parsed command line: a command word, <c>--name value</c> options (or <c>--name=value</c>), <c>--flag</c>
/// switches and positional arguments. Every option must be consumed by the command, so a misspelt one is an error.
/// </summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _used = new(StringComparer.OrdinalIgnoreCase);

    public string Command { get; }

    public List<string> Positional { get; } = new();

    private CommandLine(string command) => Command = command;

    /// <summary>Names of options that take no value.</summary>
    private static readonly HashSet<string> Switches = new(StringComparer.OrdinalIgnoreCase)
    {
        "json", "help", "h", "download", "tiny", "quiet", "no-evaluate",
    };

    public static CommandLine Parse(string[] args, IReadOnlySet<string> booleanOptions)
    {
        int start = 0;
        string command = "demo";
        if (args.Length > 0 && !args[0].StartsWith('-'))
        {
            command = args[0].ToLowerInvariant();
            start = 1;
        }

        var line = new CommandLine(command);
        for (int i = start; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                line.Positional.AddRange(args.Skip(i + 1));
                break;
            }
            if (!arg.StartsWith('-') || arg == "-")
            {
                line.Positional.Add(arg);
                continue;
            }

            string name = arg.TrimStart('-');
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (Switches.Contains(name))
            {
                value = "true";
            }
            else if (booleanOptions.Contains(name))
            {
                // A boolean option may be given alone (--reverse-reconstruction) or with true/false.
                if (i + 1 < args.Length && bool.TryParse(args[i + 1], out _))
                    value = args[++i];
                else
                    value = "true";
            }
            else
            {
                if (i + 1 >= args.Length)
                    throw new UsageException($"Option --{name} needs a value.");
                value = args[++i];
            }
            if (line._options.ContainsKey(name))
                throw new UsageException($"Option --{name} is given twice.");
            line._options[name] = value;
        }
        return line;
    }

    public bool Has(string name) => _options.ContainsKey(name);

    public string? String(string name)
    {
        if (!_options.TryGetValue(name, out string? value))
            return null;
        _used.Add(name);
        return value;
    }

    public bool Flag(string name)
    {
        string? value = String(name);
        if (value == null)
            return false;
        return bool.TryParse(value, out bool b) ? b : throw new UsageException($"--{name} takes true or false, not '{value}'.");
    }

    public int? Int(string name, int min = int.MinValue)
    {
        string? value = String(name);
        if (value == null)
            return null;
        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int result))
            throw new UsageException($"--{name} takes a whole number, not '{value}'.");
        if (result < min)
            throw new UsageException($"--{name} must be at least {min}, not {result}.");
        return result;
    }

    public string Required(string name, string what)
        => String(name) ?? throw new UsageException($"Missing --{name} ({what}).");

    /// <summary>All options not yet read.</summary>
    public IEnumerable<KeyValuePair<string, string?>> Unused => _options.Where(o => !_used.Contains(o.Key));

    /// <summary>Marks an option as read (for options consumed by a binder).</summary>
    public void MarkUsed(string name) => _used.Add(name);

    public void ThrowOnUnused()
    {
        var unused = Unused.Select(o => "--" + o.Key).ToArray();
        if (unused.Length > 0)
            throw new UsageException($"Unknown option{(unused.Length > 1 ? "s" : "")} for '{Command}': {string.Join(", ", unused)}. Run 'auxrnn help {Command}' for the list.");
    }
}
