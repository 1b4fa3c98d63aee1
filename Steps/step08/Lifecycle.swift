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
    var rows = [["ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID"]]
    for record in try allRecords() {
        let running = isRunning(record)
        guard running || parsed.has("-a") else { continue }
        let status = running ? "running" : record.pid == 0 ? "created" : "exited"
        var command = record.command.joined(separator: " ")
        if command.count > 30 { command = String(command.prefix(27)) + "..." }
        rows.append([
            record.id, record.name, record.image, command, record.created, status,
            running ? String(record.pid) : "-",
        ])
    }
    printOutput(formatTable(rows))
    return 0
}

/// Columns padded to their widest cell, three spaces apart, like docker's tables.
func formatTable(_ rows: [[String]]) -> String {
    let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { column, cell in
            column == row.count - 1
                ? cell : cell + String(repeating: " ", count: widths[column] - cell.count + 3)
        }.joined()
    }.joined(separator: "\n") + "\n"
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
        guard let seconds = Int(text), seconds >= 0 else {
            throw UsageError("invalid stop timeout '\(text)' (whole seconds, 0 or more)")
        }
        timeout = seconds
    }
    var record = try findContainer(nameOrID)
    try stopContainer(record, timeout: timeout)
    // A foreground container's runtime is removing it right now; only a detached one keeps its
    // record, to be shown as exited until `rm`.
    if record.detached {
        record.status = "exited"
        try writeRecord(record)
    }
    printOutput(record.name + "\n")
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

/// CLOCK_MONOTONIC: a deadline that neither a clock change nor whole-second rounding can move.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// `rm [-f] CONTAINER`.
func rm(_ arguments: [String]) throws -> Int32 {
    let (parsed, nameOrID) = try containerArgument(rmSpec, arguments)
    let record: ContainerRecord
    do {
        record = try findContainer(nameOrID)
    } catch {
        // A runtime killed halfway through `run` can leave a directory without a record: rm -f
        // still cleans that up, by name.
        guard parsed.has("-f"), (try? validateContainerName(nameOrID)) != nil,
            isDirectory(containerDirectory(nameOrID)) || isDirectory(Layer(name: nameOrID).directory)
        else { throw error }
        try removeContainer(nameOrID)
        printOutput(nameOrID + "\n")
        return 0
    }
    if isRunning(record) {
        guard parsed.has("-f") else {
            throw Failure("container '\(record.name)' is running (stop it first, or use rm -f)")
        }
        try stopContainer(record, timeout: 0)
    }
    try removeContainer(record.name)
    printOutput(record.name + "\n")
    return 0
}

/// Removes what a container had, the record last: if anything fails on the way, the record is
/// still there and `rm` can be run again. Also used by `run` to undo a start that failed halfway.
func removeContainer(_ name: String) throws {
    // The record is written before the cgroup is made: no record, no cgroup.
    if let record = try? readRecord(name) {
        let cgroup = try Cgroup.existing(id: record.id)
        // Normally empty by now; after a runtime was killed mid-start it may still hold the
        // container's processes, and a cgroup with processes in it cannot be removed.
        cgroup.killProcesses()
        cgroup.remove()
    }
    removeLayer(Layer(name: name))
    try removeTree(containerDirectory(name))
}
