import Glibc

// Two debugging aids on the same marks, one call per stage of a container's start:
//   MYDOCKER_TRACE=1            prints `step10[4242] trace 8123.456 ms (+0.210 ms) clone` to stderr:
//                               a monotonic clock shared by the runtime and its init, and the time
//                               since this process's previous mark.
//   MYDOCKER_TEST_PAUSE_AT=NAME stops the process (SIGSTOP) at the mark NAME, so a test can kill
//                               the runtime at exactly that point and check what it left behind.

private let traceEnabled =
    getenv("MYDOCKER_TRACE").map { $0.pointee != 0 && String(cString: $0) != "0" } ?? false
private let pauseAt = getenv("MYDOCKER_TEST_PAUSE_AT").map { String(cString: $0) }
nonisolated(unsafe) private var previousMark: Double = 0

private func monotonicMilliseconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1_000_000
}

private func formatMilliseconds(_ value: Double) -> String {
    let micros = Int((value * 1000).rounded())
    let fraction = String(micros % 1000)
    return "\(micros / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
}

/// Marks the end of a stage of the start (see the top of this file).
public func trace(_ stage: String) {
    if traceEnabled {
        let now = monotonicMilliseconds()
        let delta = previousMark == 0 ? 0 : now - previousMark
        previousMark = now
        var bytes = Array(
            "\(toolName)[\(getpid())] trace \(formatMilliseconds(now)) ms (+\(formatMilliseconds(delta)) ms) \(stage)\n"
                .utf8)
        _ = write(STDERR_FILENO, &bytes, bytes.count)
    }
    if let pauseAt, pauseAt == stage {
        raise(SIGSTOP)
    }
}
