import Glibc

/// The running step's name (`step05`), taken from the binary itself so that every message, also
/// from the re-executed init, starts with it.
public let toolName: String = {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return "mydocker" }
    let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path.split(separator: "/").last ?? "mydocker")
}()

/// Exit code for a failure of the runtime itself (docker's convention): 125.
public let runtimeFailureExit: Int32 = 125

/// Writes `step05: MESSAGE` to stderr as a single write(2), so lines from the runtime and its
/// container never interleave mid-line. Control characters a message quotes from the user (a
/// newline in a flag's value, an escape sequence) are escaped: the error stays one line and
/// cannot drive the terminal.
public func printError(_ message: String) {
    let line = "\(toolName): \(escapeControlCharacters(message, backslashes: false))\n"
    var bytes = Array(line.utf8)
    _ = write(STDERR_FILENO, &bytes, bytes.count)
}

/// Writes `text` to stdout with write(2): no buffering to flush before an exec or an _exit.
public func printOutput(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes {
            write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset)
        }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        offset += n
    }
}

/// Runs a subcommand and exits with what it returns. Errors become one line on stderr and exit 125;
/// `--help` prints its text and exits 0. No Swift error ever reaches the user as a trap.
public func runMain(_ body: () throws -> Int32) -> Never {
    do {
        exit(try body())
    } catch let help as HelpRequest {
        printOutput(help.text)
        exit(0)
    } catch {
        printError("\(error)")
        exit(runtimeFailureExit)
    }
}

/// Every step needs root: namespaces other than the user namespace, mounts and cgroups all require
/// CAP_SYS_ADMIN.
public func requireRoot() throws {
    guard geteuid() == 0 else {
        throw UsageError("must be run as root (build as yourself, then: sudo .build/debug/\(toolName) ...)")
    }
}
