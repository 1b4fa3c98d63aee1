import Glibc

// Processes: signal masks, wait statuses, a clock for deadlines.

/// Blocks exactly `signals`. Unlike dispositions, the mask is inherited across clone and execve
/// as it is, and whoever started us (a Dispatch thread, a supervisor) may have blocked some:
/// setting the whole mask also clears those, for us and for the container.
public func setSignalMask(blocking signals: [Int32]) {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in signals { sigaddset(&set, signal) }
    sigprocmask(SIG_SETMASK, &set, nil)
}

/// 0-255 from exit(), or 128+N for death by signal N, as shells and docker report it.
public func exitCode(fromWaitStatus status: Int32) -> Int32 {
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// CLOCK_MONOTONIC: a deadline that neither a clock change nor whole-second rounding can move.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
