import Glibc

// Flag values: docker's spellings of sizes, weights and CPU lists, checked strictly so that every
// mistake is one clear line here and never a trap, an overflow, or the kernel's bare EINVAL from
// deep inside cgroup setup.

/// `100m` -> 104857600. Suffixes b, k, m, g (either case), as docker takes them; docker's floor of
/// 6 MiB, below which a container cannot even start its shell.
public func parseMemory(_ text: String) throws -> UInt64 {
    let units: [Character: UInt64] = ["b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
    var digits = Substring(text)
    var unit: UInt64 = 1
    // ASCII letters only: lowercased() maps the Kelvin sign (U+212A) to "k".
    if let last = digits.last, last.isASCII, let multiplier = units[Character(last.lowercased())] {
        unit = multiplier
        digits = digits.dropLast()
    }
    guard let number: UInt64 = decimal(digits),
        case let (bytes, false) = number.multipliedReportingOverflow(by: unit)
    else {
        throw UsageError(
            "invalid memory size \(quotedValue(text)) (use a number with b, k, m or g, e.g. 100m)")
    }
    guard bytes >= 6 << 20 else {
        throw UsageError("memory size \(quotedValue(text)) is too small (minimum 6m)")
    }
    return bytes
}

/// cpu.shares is a relative weight between 2 and 262144 (kernel limits, see
/// Documentation/scheduler/sched-design-CFS.rst); 1024 is one full share.
public func parseCPUShares(_ text: String) throws -> UInt64 {
    guard let shares: UInt64 = decimal(Substring(text)), (2...262144).contains(shares) else {
        throw UsageError(
            "invalid cpu shares \(quotedValue(text)) (use a number from 2 to 262144, default 1024)")
    }
    return shares
}

/// A CPU list (`0`, `0-1`, `0,2-3`), checked against the CPUs that are online, so that a typo is
/// reported here and not as the kernel's EINVAL from deep in cgroup setup.
public func parseCPUSet(_ text: String) throws -> String {
    var online = try readFile("/sys/devices/system/cpu/online")
    while online.last == "\n" { online.removeLast() }
    let available = Set(try cpuRanges(in: online).flatMap { $0 })
    guard let wanted = try? cpuRanges(in: text), !wanted.isEmpty else {
        throw UsageError("invalid CPU list \(quotedValue(text)) (use e.g. 0, 0-1 or 0,2)")
    }
    // Each range is walked from its first CPU and stops at the first one that is not online, at
    // the latest one past the highest online CPU: `0-99999999999` never becomes a hundred billion
    // numbers, and a range that starts past the online CPUs (`5` on a 2-CPU machine) stops at once.
    for range in wanted {
        if let cpu = range.first(where: { !available.contains($0) }) {
            throw UsageError("CPU \(cpu) in \(quotedValue(text)) is not online (online CPUs: \(online))")
        }
    }
    return text
}

/// `0,2-3` -> [0...0, 2...3], in the order given.
public func cpuRanges(in list: String) throws -> [ClosedRange<Int>] {
    try list.split(separator: ",", omittingEmptySubsequences: false).map { part in
        let bounds: [Int?] = part.split(separator: "-", omittingEmptySubsequences: false).map(decimal)
        if bounds.count == 1, let cpu = bounds[0] {
            return cpu...cpu
        }
        if bounds.count == 2, let first = bounds[0], let last = bounds[1], first <= last {
            return first...last
        }
        throw UsageError("invalid CPU list \(quotedValue(list))")
    }
}

/// A number in ASCII digits and nothing else, or nil (also when it does not fit in `T`). Swift's
/// `Int("+5")` takes a sign, which the kernel's own parsers refuse (`+0` in cpuset.cpus is EINVAL).
public func decimal<T: FixedWidthInteger>(_ text: Substring) -> T? {
    guard !text.isEmpty, text.utf8.allSatisfy({ UInt8(ascii: "0") <= $0 && $0 <= UInt8(ascii: "9") }) else {
        return nil
    }
    return T(text)
}

/// A flag's value for an error message, in single quotes, with control characters escaped as
/// `escapeControlCharacters` does: a newline must not split the one-line error, nor an escape
/// sequence drive the user's terminal.
public func quotedValue(_ text: String) -> String {
    "'" + escapeControlCharacters(text) + "'"
}
