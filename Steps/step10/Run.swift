import CContainerSupport
import ContainerSupport
import Glibc

let runSpec = CommandSpec(
    name: "run",
    arguments: "IMAGE CMD [ARG...]",
    summary: "Run CMD as PID 1 of a new container made from IMAGE (images/IMAGE.tar).",
    flags: [
        .bool("-t", "--tty", help: "the container uses this terminal (stdin must be one)"),
        .bool("-i", "--interactive", help: "keep stdin open (without -i or -t it is /dev/null)"),
        .bool("-d", "--detach", help: "run in the background, output to the container's log"),
        .value("--name", valueName: "NAME", help: "name the container (default: its ID)"),
        .value("-e", "--env", valueName: "KEY=VALUE", help: "set an environment variable (repeatable)"),
        .value("-m", "--memory", valueName: "SIZE", help: "memory limit, e.g. 100m (b, k, m, g)"),
        .value("-cpushare", "--cpu-shares", valueName: "N", help: "CPU weight, 2-262144 (default 1024)"),
        .value("-cpuset", "--cpuset-cpus", valueName: "LIST", help: "CPUs to run on, e.g. 0 or 0-1"),
        .value("-v", "--volume", valueName: "SRC:DST", help: "bind-mount host dir SRC at DST (repeatable)"),
    ]
)

struct RunOptions {
    var tty = false
    var interactive = false
    var detach = false
    var name: String?
    var limits = ResourceLimits()
    var volumes: [Volume] = []
    var environment: [String] = []
    var image = ""
    var command: [String] = []
}

func parseRunOptions(_ arguments: [String]) throws -> RunOptions {
    let parsed = try runSpec.parse(arguments)
    var options = RunOptions()
    options.tty = parsed.has("-t")
    options.interactive = parsed.has("-i")
    options.detach = parsed.has("-d")
    options.name = parsed.value("--name")
    if let name = options.name { try validateContainerName(name) }
    guard !options.detach || !(options.tty || options.interactive) else {
        throw UsageError("-d cannot be combined with -t or -i (a detached container has no terminal)")
    }
    options.limits.memoryBytes = try parsed.value("-m").map(parseMemory)
    options.limits.cpuShares = try parsed.value("-cpushare").map(parseCPUShares)
    options.limits.cpus = try parsed.value("-cpuset").map(parseCPUSet)
    options.volumes = try parsed.all("-v").map(parseVolume)
    options.environment = try parseEnvironment(parsed.all("-e"))
    guard parsed.positionals.count >= 2 else {
        throw UsageError("run needs an image and a command (try: \(toolName) run -ti busybox sh)")
    }
    options.image = parsed.positionals[0]
    try validateImageName(options.image)
    options.command = Array(parsed.positionals.dropFirst())
    guard !options.tty || isatty(STDIN_FILENO) == 1 else {
        throw UsageError("-t needs a terminal on stdin, and stdin is not one")
    }
    return options
}

/// `run`: unpack the image, claim the name, mount the container's own layer, make its cgroup,
/// start it, write its record. Detached, return at once; in the foreground, wait for it and then
/// remove it, handing back its exit code.
func run(_ arguments: [String]) throws -> Int32 {
    let options = try parseRunOptions(arguments)
    try requireRoot()
    // From here on a SIGINT or SIGTERM must not kill us before we have cleaned up. The handler
    // can forward only once containerPID is set: hold the signals until then (a blocked signal
    // stays pending and is delivered when unblocked, to the container), so none is lost.
    installSignalForwarding()
    setSignalMask(blocking: forwardedSignals)
    trace("parse")
    try Paths.validateRoot()
    let lower = try unpackImage(options.image)
    trace("image")
    // One run at a time checks and claims a name, until its record is on disk for the next to see.
    let names = try lockNames()
    defer { names.unlock() }
    let (id, name) = try chooseIDAndName(options.name)
    // The container's own lock, held until the record names its PID: a `stop` or `rm` meanwhile
    // waits, instead of finding no process and writing back a record that has none.
    let lock = try reserveName(name)
    defer { lock.unlock() }
    // From here on a failure undoes the whole container: cgroup, layer, record directory.
    do {
        // The record comes first, as `created`: it names the cgroup (by the container's ID, so
        // two MYDOCKER_ROOTs with a container called `web` never share one), and a runtime
        // killed halfway leaves enough behind for `rm -f` to find everything.
        let environment = initialEnvironment(options, name: name)
        var record = ContainerRecord(
            step: toolName, id: id, name: name, pid: 0, pidStartTime: 0, command: options.command,
            created: timestamp(), status: "created", image: options.image,
            volumes: options.volumes.map { "\($0.source):\($0.target)" },
            detached: options.detach, environment: environment)
        try writeRecord(record)
        names.unlock()
        try createVolumeSources(options.volumes)
        let layer = try mountLayer(for: name, lower: lower, volatile: !options.detach)
        trace("overlay")
        // The cgroup exists, with its limits, before the container does: a limit the kernel
        // refuses is reported before any process is started.
        let cgroup = try Cgroup.create(id: id, limits: options.limits)
        trace("cgroup")
        // Who owns the terminal now, before the container can take it (see takeTerminal in Init.swift).
        let terminalOwner = options.tty ? tcgetpgrp(STDIN_FILENO) : -1
        let pid = try startContainer(options, name: name, cgroup: cgroup, rootfs: layer.merged)
        record.pid = pid
        record.pidStartTime = processStartTime(pid)?.startTime ?? 0
        record.status = "running"
        try writeRecord(record)
        trace("record")
        lock.unlock()
        if options.detach {
            printOutput(id + "\n")
            return 0
        }
        let code = waitForContainer(pid, terminalOwner: terminalOwner)
        trace("exited")
        // Gone: undo what this run made, newest first, under the lock again and only while the
        // record is still this run's: a `stop` or `rm -f` may have removed it meanwhile, and a
        // new container may have taken the name.
        cgroup.remove()
        if let again = try lockContainer(name) {
            defer { again.unlock() }
            if recordedID(name) == id {
                removeLayer(layer)
                try removeTree(containerDirectory(name))
            }
        }
        trace("cleanup")
        return code
    } catch {
        // Only while the lock is ours: once it is released, the container is for rm to remove.
        if lock.isHeld { try? removeContainer(name, id: id) }
        throw error
    }
}

/// The namespaces every container gets. PID needs clone(2) rather than unshare(2): a process never
/// changes its own PID namespace, only its children are born into the new one.
let namespaceFlags = CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
let namespaceNames = "CLONE_NEWUTS|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC"

/// Clones a child into new namespaces and re-executes this binary in it as `init`, then puts the
/// child into its cgroup and only then lets it go on.
///
/// Between clone and execve the child is a copy of a Swift process that may hold locks it will never
/// release, so it only calls dup2 and execve. Everything else happens in `init`, after the exec,
/// in a fresh process.
func startContainer(_ options: RunOptions, name: String, cgroup: Cgroup, rootfs: String) throws -> pid_t {
    let volumeArguments = options.volumes.flatMap { ["--volume", "\($0.source):\($0.target)"] }
    let argv = CStringArray(
        [toolName, "init", "--rootfs", rootfs, "--hostname", name] + volumeArguments
            + (options.tty ? ["--tty"] : []) + (options.detach ? ["--detach"] : []))
    // A detached container writes to its log file instead of this terminal.
    let output = options.detach ? open(logPath(name), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) : -1
    guard !options.detach || output >= 0 else { throw SyscallError("open \(logPath(name))") }
    defer { if output >= 0 { close(output) } }
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    guard devNull >= 0 else { throw SyscallError("open /dev/null") }
    defer { close(devNull) }
    // init is our own binary, started on the host's filesystem before pivot_root: it gets only the
    // runtime's variables, never the user's. With `-e LD_PRELOAD=...` in its environment the host's
    // dynamic loader would load a library of the user's choosing into init. The container's
    // environment travels with the command over the pipe and reaches only the command's execve.
    let initEnvironment = CStringArray(traceEnvironment())
    let execFailed = Array("\(toolName): exec /proc/self/exe init failed\n".utf8)
    let sync = try makeCommandPipe()

    // Whatever our caller left open (`9</etc` in its shell) would survive execve and hand the
    // container a door into the host's files (runc's CVE-2024-21626, "Leaky Vessels"). Our own
    // descriptors are O_CLOEXEC already; this catches the inherited ones, whatever their number.
    guard cs_mark_cloexec_from(3) == 0 else {
        throw SyscallError("mark inherited descriptors 3 and up close-on-exec (close_range)")
    }

    let pid = cs_clone(UInt(namespaceFlags))
    if pid == 0 {
        // The mask survives execve: the container starts with nothing blocked.
        setSignalMask(blocking: [])
        // A foreground container dies with its runtime: nobody else could ever clean it up.
        if !options.detach { cs_set_parent_death_signal(SIGKILL) }
        if !options.interactive && !options.tty { dup2(devNull, STDIN_FILENO) }
        if output >= 0 {
            dup2(output, STDOUT_FILENO)
            dup2(output, STDERR_FILENO)
        }
        // The read end becomes fd 3 in init; dup2 clears O_CLOEXEC on the copy, so it survives.
        dup2(sync.read, 3)
        execve("/proc/self/exe", argv.argv, initEnvironment.argv)
        _ = execFailed.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        _exit(runtimeFailureExit)
    }
    close(sync.read)
    defer { close(sync.write) }
    if pid > 0 { containerPID = pid }
    setSignalMask(blocking: [])
    guard pid > 0 else { throw SyscallError("clone \(namespaceNames)") }
    trace("clone")
    // If init dies before it has read the pipe, our write gets EPIPE instead of a SIGPIPE that
    // would kill the runtime before it cleans up. (Set after the clone: the container keeps the
    // default.)
    signal(SIGPIPE, SIG_IGN)
    do {
        try cgroup.add(pid: pid)
        trace("cgroup join")
        try sendCommand(options.command, environment: initialEnvironment(options, name: name), to: sync.write)
    } catch {
        // init is blocked on the pipe until the write succeeds: no user code ran. Kill it
        // before reporting.
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        throw error
    }
    return pid
}

/// The container's PID 1 as the host sees it, for the signal handler (which can read only globals).
nonisolated(unsafe) var containerPID: pid_t = 0

/// Passes SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the runtime (by `kill`, a supervisor, a test)
/// on to the container, which decides what they mean (as PID 1 it only gets those it has a handler
/// for: pid_namespaces(7)), while the runtime lives on to report its exit code. A signal the terminal generated (Ctrl-C) reached the container already: the
/// kernel sends those to the whole foreground process group, so forwarding it would deliver it twice.
///
/// A handler, not SIG_IGN: ignored signals stay ignored across execve, handled ones are reset to
/// their default, so the container starts with clean signal dispositions.
func installSignalForwarding() {
    var action = sigaction()
    action.__sigaction_handler.sa_sigaction = { signal, info, _ in
        guard containerPID > 0, let info, info.pointee.si_code <= 0 else { return }
        kill(containerPID, signal)
    }
    action.sa_flags = SA_SIGINFO | SA_RESTART
    sigemptyset(&action.sa_mask)
    for signal in forwardedSignals {
        sigaction(signal, &action, nil)
    }
}

let forwardedSignals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

/// Waits for the container's PID 1 and turns its wait status into a shell-style exit code.
func waitForContainer(_ pid: pid_t, terminalOwner: pid_t) -> Int32 {
    // Wait without reaping first (WNOWAIT): until it is reaped, the dead container keeps its PID as
    // a zombie, so the kernel cannot give the number to another process while the signal handler
    // may still forward to it. Stop forwarding, and only then reap.
    var info = siginfo_t()
    while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
    containerPID = 0
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    if terminalOwner > 0 { reclaimTerminal(terminalOwner) }
    return exitCode(fromWaitStatus: status)
}

/// With -t the container took the terminal's foreground (see `takeTerminal` in Init.swift). Once it
/// is gone, hand the terminal back to the process group that owned it before the run. SIGTTOU is
/// ignored meanwhile: a background group that calls tcsetpgrp(3) is otherwise stopped.
func reclaimTerminal(_ group: pid_t) {
    let previous = signal(SIGTTOU, SIG_IGN)
    tcsetpgrp(STDIN_FILENO, group)
    signal(SIGTTOU, previous)
}
