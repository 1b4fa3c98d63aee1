import ContainerSupport
import Glibc

let initSpec = CommandSpec(
    name: "init",
    arguments: "",
    summary: "Internal: the container's first process, started by 'run' inside the new namespaces.",
    flags: [
        .bool("--tty", help: "take the terminal's foreground (run -t)"),
        .value("--rootfs", valueName: "DIR", help: "the container's root filesystem (the merged overlay)"),
        .value("--volume", valueName: "SRC:DST", help: "a volume to bind-mount before pivot_root"),
        .value("--hostname", valueName: "NAME", help: "the container's hostname (its name)"),
        .bool("--detach", help: "leave the runtime's session (run -d)"),
        .value("--address", valueName: "CIDR", help: "eth0's address (the runtime made eth0)"),
        .value("--gateway", valueName: "IP", help: "the default route's gateway"),
        .value(
            "--capabilities", valueName: "HEX", help: "the capability set (bounding, permitted, effective)"),
        .bool("--no-seccomp", help: "install no seccomp filter"),
        .bool("--no-new-privileges", help: "set no_new_privs"),
        .bool("--privileged", help: "no masks, the host's devices, writable cgroups"),
        .value("--user", valueName: "USER[:GROUP]", help: "the user the command runs as"),
    ]
)

/// `init`: runs as PID 1 inside the new namespaces, prepares them, then becomes the user's command.
/// Never typed by the user: `run` re-executes `/proc/self/exe init` in the clone and sends the
/// command over the pipe on fd 3.
func initContainer(_ arguments: [String]) throws -> Never {
    // Outside a new PID namespace this would remount the host's /proc: refuse.
    guard getpid() == 1 else {
        throw UsageError("init runs inside a container only (it is started by '\(toolName) run')")
    }
    trace("init")
    let parsed = try initSpec.parse(arguments)
    let tty = parsed.has("--tty")
    guard let rootfs = parsed.value("--rootfs") else { throw UsageError("init needs --rootfs") }
    let volumes = try parsed.all("--volume").map(parseVolume)
    let security = try parseSecurityArguments(parsed)
    // Blocks until the runtime has put us into the cgroup and sent the command and its environment.
    let (command, environment) = try readCommand()
    try setUpNetwork(address: parsed.value("--address"), gateway: parsed.value("--gateway"))
    trace("network")
    try enterCgroupNamespace()
    try makeMountsPrivate()
    // What the host has, read while it is still in reach.
    let cgroupMounts = try listCgroupMounts()
    let hostDevices = security.privileged ? listHostDevices() : []
    try mountVolumes(volumes, into: rootfs)
    if tty { try bindTerminal(into: rootfs) }
    try pivotRoot(into: rootfs)
    trace("pivot_root")
    try mountProc()
    try mountSys()
    try mountCgroups(cgroupMounts, privileged: security.privileged)
    try setUpDev()
    try createHostDevices(hostDevices)
    try mountMessageQueues()
    if tty { try attachConsole() }
    if !security.privileged { try maskHostPaths() }
    trace("mounts")
    if let hostname = parsed.value("--hostname") { try setHostname(hostname) }
    if parsed.has("--detach") { try leaveSession() }
    if tty { try takeTerminal() }
    let user = try resolveUser(parsed.value("--user"))
    try dropPrivileges(security, user: user)
    trace("privileges")
    try execCommand(command, environment: environment)
}

/// The new mount namespace starts as a copy of the host's, with the same propagation: on systemd
/// hosts `/` is MS_SHARED, so the /proc we mount next would propagate back to the host and hide
/// the host's own /proc (mount_namespaces(7)). MS_PRIVATE|MS_REC cuts every mount below `/` loose,
/// and it must come before the first mount.
func makeMountsPrivate() throws {
    guard mount(nil, "/", nil, UInt(MS_PRIVATE | MS_REC), nil) == 0 else {
        throw SyscallError("make / private (MS_PRIVATE|MS_REC)")
    }
}

/// A fresh proc filesystem shows the processes of the PID namespace of the process that mounts it:
/// `ps` then lists only the container. The host's /proc is still the old one (its mount stays in
/// the host's mount namespace).
func mountProc() throws {
    let flags = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
    guard mount("proc", "/proc", "proc", flags, nil) == 0 else {
        throw SyscallError("mount proc on /proc")
    }
}

/// With -t, the container gets its own process group and makes it the terminal's foreground group.
/// Then Ctrl-C reaches the container and not the runtime, and a shell's job control finds a process
/// group it can see: the runtime's group lives outside this PID namespace, and a shell that tries to
/// hand the terminal back to it on exit fails ("Cannot set tty process group").
func takeTerminal() throws {
    guard setpgid(0, 0) == 0 else { throw SyscallError("setpgid 0 0") }
    // We are in a background group now: tcsetpgrp would stop us with SIGTTOU unless it is ignored.
    // Back to the default before the exec, or the command would inherit the SIG_IGN.
    signal(SIGTTOU, SIG_IGN)
    defer { signal(SIGTTOU, SIG_DFL) }
    guard tcsetpgrp(STDIN_FILENO, getpid()) == 0 else { throw SyscallError("tcsetpgrp on stdin") }
}

/// The container's name as its hostname, as docker uses the container ID: our UTS namespace has a
/// hostname of its own since step 01, now it gets a useful one.
func setHostname(_ name: String) throws {
    guard sethostname(name, name.utf8.count) == 0 else { throw SyscallError("sethostname \(name)") }
}

/// A detached container gets a session of its own (setsid(2)): closing the terminal that started
/// it sends SIGHUP to that terminal's session, and it must not reach the container.
func leaveSession() throws {
    guard setsid() >= 0 else { throw SyscallError("setsid") }
}

/// execve(2) replaces init with the command, keeping PID 1: the command is the container's init
/// process, and when it exits the kernel tears the PID namespace down. execvp searches PATH, and it
/// reads PATH from our own environment: the container's environment becomes ours first, so the
/// command is looked up in the container's PATH and inherits exactly `environment`.
func execCommand(_ command: [String], environment: [String]) throws -> Never {
    let argv = CStringArray(command)
    trace("exec")
    clearenv()
    for entry in environment { putenv(strdup(entry)) }
    execvp(command[0], argv.argv)
    // The exec failed. Exit like a shell: 127 when there is no such command, 126 when it can't run.
    let error = SyscallError("exec \(command[0])")
    printError("\(error)")
    exit(error.errno == ENOENT ? 127 : 126)
}
