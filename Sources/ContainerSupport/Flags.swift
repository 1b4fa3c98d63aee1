/// A command-line flag: its spellings (tutorial and docker style, e.g. `-cpushare` and
/// `--cpu-shares`), whether it takes a value, and one line of help.
public struct Flag: Sendable {
    public let names: [String]
    public let valueName: String?
    public let help: String

    /// A switch such as `-t`/`--tty`.
    public static func bool(_ names: String..., help: String) -> Flag {
        Flag(names: names, valueName: nil, help: help)
    }

    /// A flag with a value such as `-m 100m`, `--memory=100m`; may be repeated.
    public static func value(_ names: String..., valueName: String, help: String) -> Flag {
        Flag(names: names, valueName: valueName, help: help)
    }
}

/// A subcommand's grammar: `run [FLAGS] CMD [ARG...]`.
public struct CommandSpec: Sendable {
    public let name: String
    public let arguments: String
    public let summary: String
    public let flags: [Flag]

    public init(name: String, arguments: String, summary: String, flags: [Flag] = []) {
        self.name = name
        self.arguments = arguments
        self.summary = summary
        self.flags = flags
    }

    public var usage: String {
        let words = [toolName, name, flags.isEmpty ? "" : "[FLAGS]", arguments].filter { !$0.isEmpty }
        var text = "Usage: \(words.joined(separator: " "))\n\n\(summary)\n"
        if !flags.isEmpty { text += "\nFlags:\n" }
        for flag in flags {
            let spelled = flag.names.joined(separator: ", ") + (flag.valueName.map { " " + $0 } ?? "")
            let pad = String(repeating: " ", count: max(1, 30 - spelled.count))
            text += "  \(spelled)\(pad)\(flag.help)\n"
        }
        return text
    }
}

/// `--help` was asked for: `runMain` prints the text and exits 0.
public struct HelpRequest: Error {
    public let text: String
}

/// The flags given, by their first spelling, and the positional arguments after them.
public struct ParsedArguments: Sendable {
    public var values: [String: [String]] = [:]
    public var positionals: [String] = []

    public func has(_ name: String) -> Bool { values[name] != nil }
    public func value(_ name: String) -> String? { values[name]?.last }
    public func all(_ name: String) -> [String] { values[name] ?? [] }
}

extension CommandSpec {
    /// Parses flags up to the first positional argument: everything from there on belongs to the
    /// container's command (`run -ti sh -c 'ls -l'` must not read `-c` as ours). `--` also ends flags.
    /// Short switches combine (`-ti`); values come as `-m 100m`, `-m100m` or `--memory=100m`.
    public func parse(_ arguments: [String]) throws -> ParsedArguments {
        var parsed = ParsedArguments()
        var index = 0
        func takeValue(_ flag: Flag, _ spelled: String) throws -> String {
            index += 1
            guard index < arguments.count else {
                throw UsageError("flag \(spelled) needs a value (\(flag.valueName ?? "VALUE"))")
            }
            return arguments[index]
        }
        while index < arguments.count {
            let arg = arguments[index]
            if arg == "--" {
                index += 1
                break
            }
            if arg == "--help" || arg == "-h" { throw HelpRequest(text: usage) }
            guard arg.hasPrefix("-"), arg != "-" else { break }
            let (spelled, inline) = splitInlineValue(arg)
            if let flag = flag(named: spelled) {
                let key = flag.names[0]
                if flag.valueName == nil {
                    guard inline == nil else { throw UsageError("flag \(spelled) takes no value") }
                    parsed.values[key, default: []].append("true")
                } else {
                    parsed.values[key, default: []].append(try inline ?? takeValue(flag, spelled))
                }
            } else if let expanded = expandShortFlags(arg) {
                for (flag, value) in expanded {
                    parsed.values[flag.names[0], default: []].append(value)
                }
            } else {
                let command = name.isEmpty ? toolName : "\(toolName) \(name)"
                throw UsageError("unknown flag '\(spelled)' (see \(command) --help)")
            }
            index += 1
        }
        parsed.positionals = Array(arguments[index...])
        return parsed
    }

    private func flag(named name: String) -> Flag? {
        flags.first { $0.names.contains(name) }
    }

    /// `--memory=100m` -> (`--memory`, `100m`). Only double-dash flags take `=`.
    private func splitInlineValue(_ arg: String) -> (String, String?) {
        guard arg.hasPrefix("--"), let equals = arg.firstIndex(of: "=") else { return (arg, nil) }
        return (String(arg[..<equals]), String(arg[arg.index(after: equals)...]))
    }

    /// `-ti` -> `-t`, `-i`; `-m100m` -> `-m 100m`. Nil when the letters are not all our flags.
    private func expandShortFlags(_ arg: String) -> [(Flag, String)]? {
        guard !arg.hasPrefix("--"), arg.count > 2 else { return nil }
        var result: [(Flag, String)] = []
        var rest = Substring(arg.dropFirst())
        while let letter = rest.first {
            guard let flag = flag(named: "-" + String(letter)) else { return nil }
            rest = rest.dropFirst()
            if flag.valueName != nil {
                guard !rest.isEmpty else { return nil }
                result.append((flag, String(rest)))
                return result
            }
            result.append((flag, "true"))
        }
        return result
    }
}
