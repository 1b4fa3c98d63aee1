import CContainerSupport
import ContainerSupport
import Glibc
import step09nsenter

// `exec` runs one more process inside a running container: in its ipc, uts, net, pid and mount
// namespaces (so it sees the container's hostname, processes and files) and in its cgroup (so the
// container's limits cover it too). The namespaces are joined by setns(2) in the C constructor in
// nsenter/nsenter.c, because setns into a mount namespace needs a single-threaded process; this
// file prepares everything the constructor needs and re-executes the binary to wake it.

let execSpec = CommandSpec(
    name: "exec",
    arguments: "CONTAINER CMD [ARG...]",
    summary: "Run CMD inside a running container.",
    flags: [
        .bool("-t", "--tty", help: "the command uses this terminal (stdin must be one)"),
        .bool("-i", "--interactive", help: "keep stdin open (without -i or -t it is /dev/null)"),
    ]
)

/// `exec [-ti] CONTAINER CMD [ARG...]`
func exec(_ arguments: [String]) throws -> Int32 {
    let parsed = try execSpec.parse(arguments)
    guard parsed.positionals.count >= 2 else {
        throw UsageError("exec needs a container and a command (try: \(toolName) exec web sh)")
    }
    let tty = parsed.has("-t")
    guard !tty || isatty(STDIN_FILENO) == 1 else {
        throw UsageError("-t needs a terminal on stdin, and stdin is not one")
    }
    try requireRoot()
    try Paths.validateRoot()
    let record = try findContainer(parsed.positionals[0])
    // Hold the process first, check it second: a pidfd names one process for as long as it is
    // open, so once the start time matches, the pidfd is the container's PID 1 and stays so, even if
    // the container dies and its number goes to someone else before the constructor joins it.
    let process = cs_pidfd_open(record.pid)
    guard process >= 0 && isRunning(record) else {
        throw Failure("container '\(record.name)' is not running")
    }
    let command = Array(parsed.positionals.dropFirst())

    // Join the cgroup here, in Swift: cgroup membership needs no namespace trick, and it is
    // inherited across the exec below and by the command the constructor forks.
    try Cgroup.existing(id: record.id).add(pid: getpid())
    if !parsed.has("-i") && !tty { try redirectStdinToDevNull() }
    try reexecIntoContainer(pidfd: process, command: command, environment: callerEnvironment(), tty: tty)
}

func redirectStdinToDevNull() throws {
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    guard devNull >= 0 else { throw SyscallError("open /dev/null") }
    defer { close(devNull) }
    guard dup2(devNull, STDIN_FILENO) >= 0 else { throw SyscallError("dup2 /dev/null to stdin") }
}

/// The command gets the runtime's own environment at this step (step 10 gives it the container's).
func callerEnvironment() -> [String] {
    var entries: [String] = []
    var entry = environ
    while let pointer = entry.pointee {
        entries.append(String(cString: pointer))
        entry += 1
    }
    return entries
}

/// Becomes `/proc/self/exe __nsenter tty|notty CMD [ARG...]` with the pidfd at descriptor 3, the
/// command's environment in a memfd at 4, and an empty environment: what the host's loader and the
/// constructor read is all the runtime's, none of it the user's or the container's. In the new
/// process image the constructor runs before main, joins the container and never returns.
func reexecIntoContainer(pidfd: Int32, command: [String], environment: [String], tty: Bool) throws -> Never {
    let environmentFile = try writeEnvironmentFile(environment)
    try placeDescriptors([pidfd, environmentFile], from: NSENTER_PIDFD)
    let argv = CStringArray([toolName, NSENTER_MARKER, tty ? NSENTER_TTY : NSENTER_NO_TTY] + command)
    let noEnvironment = CStringArray([])
    trace("nsenter")
    execve("/proc/self/exe", argv.argv, noEnvironment.argv)
    throw SyscallError("exec /proc/self/exe")
}

/// KEY=VALUE entries, each ended by a NUL, in a memfd: it has no path anyone else could open, and
/// unlike a pipe it takes any size without a reader on the other end.
func writeEnvironmentFile(_ environment: [String]) throws -> Int32 {
    let fd = cs_memfd_create("environment")
    guard fd >= 0 else { throw SyscallError("memfd_create") }
    var bytes = environment.reduce(into: [UInt8]()) { bytes, entry in
        bytes += entry.utf8
        bytes.append(0)
    }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw SyscallError("write the environment to its memfd") }
        offset += n
    }
    return fd
}

/// Puts `descriptors` at `first`, `first + 1`, ..., open across execve (dup2 clears close-on-exec
/// on its copy). Each goes above 10 first, so that no copy lands on itself or on another of them.
func placeDescriptors(_ descriptors: [Int32], from first: Int32) throws {
    let high = try descriptors.map { fd in
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 10)
        guard copy >= 0 else { throw SyscallError("fcntl F_DUPFD_CLOEXEC") }
        return copy
    }
    for (offset, fd) in high.enumerated() {
        let target = first + Int32(offset)
        guard dup2(fd, target) >= 0 else { throw SyscallError("dup2 to \(target)") }
    }
}
