// The test harness: runs the built step binaries as a learner would (as root, as subprocesses) in a
// sandbox of their own, and proves afterwards that they left nothing behind.
import CContainerSupport
import Foundation
import Testing

/// All step suites nest in this one serialized suite: containers, mounts and cgroups are
/// machine-wide, and the residue check must be able to blame the one test that ran.
@Suite(.serialized, .enabled(if: Harness.canRun, Harness.rootReason))
enum Steps {}

enum Harness {
    static let isRoot = geteuid() == 0
    /// Every program the harness starts holds this descriptor open on the host's `/`, not
    /// close-on-exec (see Spawned): a runtime that lets it reach a container leaks the host.
    static let canaryDescriptor: Int32 = 19
    /// Under CI=true nothing may be skipped: a missing root is then a failure, not a skip.
    static let inCI: Bool = {
        let value = ProcessInfo.processInfo.environment["CI"] ?? ""
        return !value.isEmpty && value != "false" && value != "0"
    }()
    static let canRun = isRoot || inCI
    static let rootReason: Comment =
        "needs root (namespaces, mounts, cgroups): run as root; with CI=true this is a failure, not a skip"

    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where `swift build` put the step binaries: MYDOCKER_BIN_DIR, or next to this test bundle.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["MYDOCKER_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while dir.path != "/" {
            dir = dir.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("step01").path) {
                return dir
            }
        }
        return packageRoot.appendingPathComponent(".build/debug")
    }()

    /// The binary for `step`: the learner's workbench build if MYDOCKER_WORKBENCH names this step's.
    static func binary(_ step: String) -> String {
        binDirectory.appendingPathComponent(programName(step)).path
    }

    /// Seed for the random values a test passes through (exit codes, hostnames): printed once, and
    /// taken from MYDOCKER_TEST_SEED to replay a failure.
    static let seed: UInt64 = {
        let env = ProcessInfo.processInfo.environment["MYDOCKER_TEST_SEED"]
        let seed = env.flatMap(UInt64.init) ?? UInt64.random(in: 1...999_999)
        FileHandle.standardError.write(Data("mydocker tests: MYDOCKER_TEST_SEED=\(seed)\n".utf8))
        return seed
    }()
    nonisolated(unsafe) static var generator = SeededGenerator(seed: seed)
    static func random(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &generator) }

    /// The busybox image, built once per test run by rootfs-tools into the build folder the tests
    /// run from (so a root-owned copy never lands in the user's .build), or the
    /// tarball MYDOCKER_TEST_IMAGE names (the VM check ships one, having no apt inside).
    static let busyboxImage: Result<String, HarnessError> = {
        if let given = ProcessInfo.processInfo.environment["MYDOCKER_TEST_IMAGE"], !given.isEmpty {
            return .success(given)
        }
        let cacheRoot = binDirectory.deletingLastPathComponent().appendingPathComponent("test-image").path
        let script = packageRoot.appendingPathComponent("rootfs-tools/build-busybox-image.sh").path
        let result = runProcess(
            ["/bin/bash", script], environment: ["MYDOCKER_ROOT": cacheRoot], timeout: 300)
        guard result.exitCode == 0 else {
            return .failure(HarnessError("building the busybox image failed:\n\(result)"))
        }
        return .success(cacheRoot + "/images/busybox.tar")
    }()

    /// Once per test process: orphans (a detached container whose runtime exited, a tmux server)
    /// are re-parented to us, not to the host's init, so the residue check can find them.
    /// Also: a write to a pipe whose reader died (a learner's init that exits early) is EPIPE, not
    /// a SIGPIPE that kills the whole test run. Spawned children get the default back.
    static let becomeSubreaper: Void = {
        _ = cs_set_child_subreaper()
        _ = signal(SIGPIPE, SIG_IGN)
    }()
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        // splitmix64
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What a finished command did, printable as evidence in an assertion.
struct RunResult: CustomStringConvertible {
    let commandLine: String
    let exitCode: Int32
    let stdout: String
    let stderr: String
    let timedOut: Bool

    var description: String {
        "$ \(commandLine)\nexit: \(exitCode)\(timedOut ? " (timed out, killed)" : "")\n"
            + "stdout: \(stdout.debugDescription)\nstderr: \(stderr.debugDescription)"
    }

    /// stderr's lines, for the "exactly one line" rule of errors.
    var stderrLines: [Substring] { stderr.split(separator: "\n") }
}

/// A program started in the background; `finish` waits for it (with a deadline) and collects its
/// output. Output goes through files, so a chatty child can never block on a full pipe.
///
/// posix_spawn rather than Foundation.Process: the child must start with an empty signal mask and
/// default dispositions (the test runs on a Dispatch thread, which blocks most signals, and a
/// blocked mask is inherited), and only we may wait for it, so orphans can be reaped safely.
final class Spawned {
    private(set) var pid: pid_t = -1
    let commandLine: String
    private let io: String
    private var startError: String?
    private var status: Int32?

    init(_ argv: [String], environment: [String: String] = [:], stdin: String? = nil) {
        io = NSTemporaryDirectory() + "/mydocker-io-\(UUID().uuidString)"
        commandLine =
            environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value) " }.joined()
            + argv.map(shellQuote).joined(separator: " ")
        let fm = FileManager.default
        try? fm.createDirectory(atPath: io, withIntermediateDirectories: true)
        _ = fm.createFile(atPath: io + "/in", contents: Data((stdin ?? "").utf8))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin == nil ? "/dev/null" : io + "/in", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, io + "/out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, io + "/err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        var all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map {
            "\($0.key)=\($0.value)"
        }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            for pointer in cArgv + cEnv { free(pointer) }
        }
        markInheritedDescriptorsCloseOnExec()
        // A careless caller, on purpose: the program inherits a descriptor on the host's `/`, as if
        // started from a shell with `19</`. Every test then also runs with a door into the host
        // held open, and the descriptor tests check that it never reaches a container.
        posix_spawn_file_actions_addopen(&actions, Harness.canaryDescriptor, "/", O_RDONLY | O_DIRECTORY, 0)
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
        if rc != 0 { startError = "posix_spawn \(argv[0]): \(String(cString: strerror(rc)))" }
    }

    /// What it has written to stdout so far.
    var stdoutSoFar: String {
        (try? String(contentsOfFile: io + "/out", encoding: .utf8)) ?? ""
    }

    /// Has it exited? (Reaps it if so.)
    var hasExited: Bool {
        if status != nil || startError != nil { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
        return status != nil
    }

    func finish(timeout: Double = 30) -> RunResult {
        defer { try? FileManager.default.removeItem(atPath: io) }
        if let startError {
            return RunResult(
                commandLine: commandLine, exitCode: -1, stdout: "", stderr: startError, timedOut: false)
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while !hasExited {
            if Date() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
                status = raw
                break
            }
            usleep(1_000)
        }
        let raw = status ?? 0
        let code: Int32 = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        let err = (try? String(contentsOfFile: io + "/err", encoding: .utf8)) ?? ""
        return RunResult(
            commandLine: commandLine, exitCode: code, stdout: stdoutSoFar, stderr: err, timedOut: timedOut)
    }
}

/// The test process holds fds it did not open (sockets of the test runner, whatever started
/// `swift test`): they are not passed on, so that what a program inherits is known exactly, the
/// canary descriptor (Harness.canaryDescriptor) and nothing else.
private func markInheritedDescriptorsCloseOnExec() {
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
        guard let fd = Int32(entry), fd > 2 else { continue }
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }
}

/// Runs a program to completion, with a deadline.
func runProcess(
    _ argv: [String], environment: [String: String] = [:], stdin: String? = nil, timeout: Double = 30
) -> RunResult {
    Spawned(argv, environment: environment, stdin: stdin).finish(timeout: timeout)
}

func shellQuote(_ word: String) -> String {
    let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:@%+,".contains($0) }
    return safe && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Polls `condition` until it holds or `timeout` passes. Tests wait on facts, never on sleep.
@discardableResult
func waitUntil(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The direct children of `pid` (for a runtime: its container's PID 1, as the host numbers it).
func childPIDs(of pid: pid_t) -> [pid_t] {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}

/// The target of a /proc/PID/ns/* link, e.g. `uts:[4026531838]`.
func namespace(_ kind: String, of pid: String = "self") -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")) ?? "?"
}

func hostHostname() -> String {
    ((try? String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)) ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

// MARK: The workbench: a learner's own step, checked by the same suite

extension Tag {
    /// A test of the idea its step adds, not an earlier guarantee checked again: the previous
    /// step's code, copied in as the workbench, fails it (Tests/Workbench/ci-check proves that).
    @Tag static var concept: Self
    /// A test that steers the reference through its trace marks (MYDOCKER_TEST_PAUSE_AT): a
    /// learner's code has no such marks, so it is skipped for a workbench.
    @Tag static var traceMarks: Self
}

extension Harness {
    /// MYDOCKER_WORKBENCH=mystepNN (what Tests/Workbench/check sets): the learner's build of
    /// Steps/mystepNN stands in for stepNN. Every other step stays the reference.
    static let workbench: String? = {
        let value = ProcessInfo.processInfo.environment["MYDOCKER_WORKBENCH"] ?? ""
        guard value.count == 8, value.hasPrefix("mystep"), value.dropFirst(6).allSatisfy(\.isNumber) else {
            return nil
        }
        return value
    }()

    static func isWorkbench(_ step: String) -> Bool { workbench == "my" + step }

    /// The name `step`'s binary runs under, which its messages and its re-executed init carry.
    static func programName(_ step: String) -> String { isWorkbench(step) ? "my" + step : step }

    static let noTraceMarksInWorkbench: Comment =
        "steers the reference by its trace marks (MYDOCKER_TEST_PAUSE_AT), which a workbench need not have"
}

/// Checks an error: exactly one line on stderr (and `exitCode`, if given). The reference's wording
/// is pinned; a workbench's words are the learner's own, so for the step under the workbench only
/// the single line and the code count. The step is the message's prefix (`step03: ...`).
func expectOneLineError(
    _ r: RunResult, exitCode: Int32? = nil, reference message: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectStderr(r, exitCode: exitCode, reference: [Substring(message)], sourceLocation: sourceLocation)
}

/// Checks stderr against the reference's lines; for the workbench's step, their number only.
func expectStderr(
    _ r: RunResult, exitCode: Int32? = nil, reference lines: [Substring],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    if let exitCode {
        #expect(
            r.exitCode == exitCode, "Expected exit code \(exitCode)\n\(r)", sourceLocation: sourceLocation)
    }
    let step = lines.first.map { String($0.prefix { $0 != ":" }) } ?? ""
    if Harness.workbench != nil && (lines.isEmpty || Harness.isWorkbench(step)) {
        let shown = lines.isEmpty ? "nothing" : "one line (the reference says \(lines[0].debugDescription))"
        #expect(
            r.stderrLines.count == lines.count, "Expected \(shown) on stderr\n\(r)",
            sourceLocation: sourceLocation)
    } else {
        #expect(r.stderrLines == lines, "Expected \(lines) on stderr\n\(r)", sourceLocation: sourceLocation)
    }
}

/// Starts `argv` as PID `pid` (free by now): /proc/sys/kernel/ns_last_pid makes it the next number
/// the kernel hands out. Any other process on the machine may take it first, so many tries.
func spawn(_ argv: [String], withPID pid: pid_t) -> Spawned? {
    for _ in 0..<500 {
        let fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let text = Array("\(pid - 1)".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let process = Spawned(argv)
        if process.pid == pid { return process }
        kill(process.pid, SIGKILL)
        _ = process.finish()
    }
    return nil
}
