import ContainerSupport
import Glibc

// ps, logs, stop and rm: each reads the records, asks the kernel what is true now, and acts.

let psSpec = CommandSpec(
    name: "ps", arguments: "", summary: "List running containers.",
    flags: [.bool("-a", "--all", help: "also list exited containers")])
let logsSpec = CommandSpec(
    name: "logs", arguments: "CONTAINER", summary: "Print a detached container's output (stdout and stderr).")
let stopSpec = CommandSpec(
    name: "stop", arguments: "CONTAINER", summary: "Stop a container: SIGTERM, then SIGKILL after a timeout.",
    flags: [.value("-t", "--time", valueName: "SECONDS", help: "seconds to wait before SIGKILL (default 10)")]
)
let rmSpec = CommandSpec(
    name: "rm", arguments: "CONTAINER", summary: "Remove a container: its record, its layer and its cgroup.",
    flags: [.bool("-f", "--force", help: "kill the container first if it is running")])

/// Reads exactly one container argument, and checks root and the state root.
func containerArgument(_ spec: CommandSpec, _ arguments: [String]) throws -> (ParsedArguments, String) {
    let parsed = try spec.parse(arguments)
    guard parsed.positionals.count == 1 else {
        throw UsageError(
            "\(spec.name) needs exactly one container name (see \(toolName) \(spec.name) --help)")
    }
    try requireRoot()
    try Paths.validateRoot()
    return (parsed, parsed.positionals[0])
}

/// `ps [-a]`: one line per container; STATUS comes from the kernel, not from the record.
func ps(_ arguments: [String]) throws -> Int32 {
    let parsed = try psSpec.parse(arguments)
    guard parsed.positionals.isEmpty else { throw UsageError("ps takes no arguments") }
    try requireRoot()
    try Paths.validateRoot()
    var records: [ContainerRecord] = []
    var unreadable: [(name: String, reason: String)] = []
    for name in try containerNames() {
        do {
            records.append(try readRecord(name))
        } catch {
            unreadable.append((name, "\(error)"))
        }
    }
    var rows = [["ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID"]]
    for record in records.sorted(by: { $0.created < $1.created }) {
        let running = isRunning(record)
        guard running || parsed.has("-a") else { continue }
        let status = running ? "running" : record.pid == 0 ? "created" : "exited"
        var command = escapeControlCharacters(record.command.joined(separator: " "))
        if command.count > 30 { command = String(command.prefix(27)) + "..." }
        rows.append(
            [record.id, record.name, record.image].map(escapeControlCharacters) + [
                command, escapeControlCharacters(record.created), status, running ? String(record.pid) : "-",
            ])
    }
    // A container whose record this step cannot read is listed too, also without -a: it may be
    // running, and one that ps hides is one nobody thinks of stopping. Its STATUS is unknown
    // (this step does not guess from a record it cannot read), and stderr says why and what to do.
    for (name, _) in unreadable {
        rows.append(
            [recordedID(name) ?? "-", name].map(escapeControlCharacters) + ["-", "-", "-", "unknown", "-"])
    }
    printOutput(formatTable(rows))
    for (_, reason) in unreadable { printError(escapeControlCharacters(reason)) }
    return 0
}

/// `logs CONTAINER`: the file the detached container's stdout and stderr were pointed at.
func logs(_ arguments: [String]) throws -> Int32 {
    let (_, nameOrID) = try containerArgument(logsSpec, arguments)
    let record = try findContainer(nameOrID)
    guard fileExists(logPath(record.name)) else {
        throw Failure("container '\(record.name)' has no log (only containers started with -d have one)")
    }
    printOutput(try readFile(logPath(record.name)))
    return 0
}

/// `stop [-t SECONDS] CONTAINER`.
func stop(_ arguments: [String]) throws -> Int32 {
    let (parsed, nameOrID) = try containerArgument(stopSpec, arguments)
    var timeout = 10
    if let text = parsed.value("-t") {
        guard let seconds: Int = decimal(Substring(text)) else {
            throw UsageError("invalid stop timeout \(quotedValue(text)) (whole seconds, 0 or more)")
        }
        timeout = seconds
    }
    let name = try withLockedContainer(nameOrID) { record in
        try stopContainer(record, timeout: timeout)
        // A foreground container's runtime removes it once we let go of the lock; only a
        // detached one keeps its record, to be shown as exited until `rm`.
        if record.detached {
            var exited = record
            exited.status = "exited"
            try writeRecord(exited)
        }
        return record.name
    }
    printOutput(name + "\n")
    return 0
}

/// SIGTERM first, so the container can shut down cleanly; SIGKILL when the time is up. The
/// container's PID 1 gets SIGTERM only if it installed a handler for it: the kernel drops signals
/// that would kill a namespace's init by default (pid_namespaces(7)); from outside the namespace,
/// SIGKILL is the one that always works.
func stopContainer(_ record: ContainerRecord, timeout: Int) throws {
    guard isRunning(record) else { return }
    if timeout > 0 {
        kill(record.pid, SIGTERM)
        if waitForExit(record, seconds: Double(timeout)) { return }
    }
    guard kill(record.pid, SIGKILL) == 0 || errno == ESRCH else {
        throw SyscallError("kill -KILL \(record.pid)")
    }
    guard waitForExit(record, seconds: 10) else {
        throw Failure("container '\(record.name)' (PID \(record.pid)) did not die after SIGKILL")
    }
}

/// Polls until the container is gone. It is not our child (the runtime that started it may
/// have exited long ago), so waitpid(2) is not available: we watch /proc instead.
func waitForExit(_ record: ContainerRecord, seconds: Double) -> Bool {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        if !isRunning(record) { return true }
        usleep(20_000)
    }
    return !isRunning(record)
}

/// `rm [-f] CONTAINER`.
func rm(_ arguments: [String]) throws -> Int32 {
    let (parsed, nameOrID) = try containerArgument(rmSpec, arguments)
    if parsed.has("-f") && isRecordless(nameOrID) {
        try removeRecordless(nameOrID)
        printOutput(nameOrID + "\n")
        return 0
    }
    // A record this step cannot read is never removed: it may describe a process that still runs,
    // and the cgroup and layer it names would be left behind.
    let name = try withLockedContainer(nameOrID) { record in
        if isRunning(record) {
            guard parsed.has("-f") else {
                throw Failure("container '\(record.name)' is running (stop it first, or use rm -f)")
            }
            try stopContainer(record, timeout: 0)
        }
        try removeContainer(record.name, id: record.id)
        return record.name
    }
    printOutput(name + "\n")
    return 0
}

/// A runtime killed between its mkdir and its first record leaves a directory without any record
/// (and nothing else: the record is written before anything else is made). rm -f cleans that up,
/// by name.
func isRecordless(_ name: String) -> Bool {
    (try? validateContainerName(name)) != nil && !fileExists(recordPath(name))
        && (isDirectory(containerDirectory(name)) || isDirectory(Layer(name: name).directory))
}

func removeRecordless(_ name: String) throws {
    let lock = try lockContainer(name)
    defer { lock?.unlock() }
    // A run that claims a name writes its record before it lets go of the lock.
    guard !fileExists(recordPath(name)) else {
        throw Failure("container '\(name)' was being created (run rm again)")
    }
    try removeContainer(name, id: nil)
}

/// Removes what a container had, the record last: if anything fails on the way, the record is
/// still there and `rm` can be run again. Also used by `run` to undo a start that failed halfway.
/// The caller holds the container's lock.
func removeContainer(_ name: String, id: String?) throws {
    // The record is written before the cgroup is made: no record, no cgroup.
    if let id {
        let cgroup = try Cgroup.existing(id: id)
        // Normally empty by now; after a runtime was killed mid-start it may still hold the
        // container's processes, and a cgroup with processes in it cannot be removed.
        cgroup.killProcesses()
        cgroup.remove()
    }
    removeLayer(Layer(name: name))
    try removeTree(containerDirectory(name))
}
