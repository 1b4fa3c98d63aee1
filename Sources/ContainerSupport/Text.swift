import Glibc

// Text the runtime prints or stores: tables, escapes, timestamps, IDs.

/// Columns padded to their widest cell, three spaces apart, like docker's tables.
public func formatTable(_ rows: [[String]]) -> String {
    let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { column, cell in
            column == row.count - 1
                ? cell : cell + String(repeating: " ", count: widths[column] - cell.count + 3)
        }.joined()
    }.joined(separator: "\n") + "\n"
}

/// Text that came from a user or a container (a container's command, a flag's value, a hand-written
/// record) must not drive the terminal: `\n`, `\r` and `\t` for those three, `\xHH` for any other
/// C0 control or DEL, `\u00HH` for a C1 control (U+0080 to U+009F: some terminals obey those too),
/// and `\\` for a backslash, so that every escape reads back one way. It is the notation of Go's
/// strconv.Quote, which `docker ps` applies to its COMMAND column.
public func escapeControlCharacters(_ text: String) -> String {
    escapeControlCharacters(text, backslashes: true)
}

/// The same, leaving backslashes alone when `backslashes` is false: for a message that already
/// holds such escapes (printError).
func escapeControlCharacters(_ text: String, backslashes: Bool) -> String {
    var escaped = ""
    for scalar in text.unicodeScalars {
        let hex = String(scalar.value, radix: 16)
        let twoDigits = scalar.value < 0x10 ? "0" + hex : hex
        switch scalar.value {
        case 0x5c where backslashes: escaped += "\\\\"
        case 0x0a: escaped += "\\n"
        case 0x0d: escaped += "\\r"
        case 0x09: escaped += "\\t"
        case 0x00..<0x20, 0x7f: escaped += "\\x" + twoDigits
        case 0x80..<0xa0: escaped += "\\u00" + twoDigits
        default: escaped.unicodeScalars.append(scalar)
        }
    }
    return escaped
}

/// Now, in UTC, as records store it.
public func timestamp() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A fresh container ID: 12 hex digits, like docker's short IDs.
public func newContainerID() -> String {
    let digits = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    return String((String(repeating: "0", count: 16) + digits).suffix(12))
}
