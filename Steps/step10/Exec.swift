import CContainerSupport
import ContainerSupport
import Glibc

// `exec` runs one more process inside a running container: in its ipc, uts, net, pid and mount
// namespaces (so it sees the container's hostname, processes and files) and in its cgroup (so the
// container's limits cover it too). The namespaces are joined by setns(2) in the C constructor in
// CContainerSupport/exec.c, because setns into a mount namespace needs a single-threaded process;
// this file prepares everything the constructor needs and re-executes the binary to wake it.

let execSpec = CommandSpec(
    name: "exec",
    arguments: "CONTAINER CMD [ARG...]",
    summary: "Run CMD inside a running container.",
    flags: [
        .bool("-t", "--tty", help: "the command uses this terminal (stdin must be one)"),
        .bool("-i", "--interactive", help: "keep stdin open (without -i or -t it is /dev/null)"),
        .value("-e", "--env", valueName: "KEY=VALUE", help: "set an environment variable (repeatable)"),
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
    // TERM=xterm with -t, as docker exec -t does; the user's own -e comes after it and wins.
    let overrides = (tty ? ["TERM=xterm"] : []) + (try parseEnvironment(parsed.all("-e")))
    try requireRoot()
    try Paths.validateRoot()
    let record = try findContainer(parsed.positionals[0])
    guard isRunning(record) else { throw Failure("container '\(record.name)' is not running") }
    let command = Array(parsed.positionals.dropFirst())
    let environment = mergeEnvironment(try containerEnvironment(pid: record.pid), overrides)

    // Join the cgroup here, in Swift: cgroup membership needs no namespace trick, and it is
    // inherited across the exec below and by the command the constructor forks.
    try Cgroup.existing(id: record.id).add(pid: getpid())
    if !parsed.has("-i") && !tty { try redirectStdinToDevNull() }
    try reexecIntoContainer(pid: record.pid, command: command, environment: environment, tty: tty)
}

func redirectStdinToDevNull() throws {
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    guard devNull >= 0 else { throw SyscallError("open /dev/null") }
    defer { close(devNull) }
    guard dup2(devNull, STDIN_FILENO) >= 0 else { throw SyscallError("dup2 /dev/null to stdin") }
}

/// Becomes `/proc/self/exe CMD [ARG...]` with the container's environment plus the constructor's
/// trigger. In the new process image the constructor runs before main, removes the trigger, joins
/// the container and never returns; the command inherits the rest of the environment.
func reexecIntoContainer(pid: Int32, command: [String], environment: [String], tty: Bool) throws -> Never {
    let trigger = ["\(CS_EXEC_PID_ENV)=\(pid)"] + (tty ? ["\(CS_EXEC_TTY_ENV)=1"] : [])
    let argv = CStringArray([toolName] + command)
    let envp = CStringArray(environment + trigger)
    execve("/proc/self/exe", argv.argv, envp.argv)
    throw SyscallError("exec /proc/self/exe")
}
