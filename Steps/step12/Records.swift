import ContainerSupport
import FoundationEssentials
import Glibc

// Without a daemon, nothing stays behind to remember a container after `run -d` returns. So the
// runtime writes down what it started, one JSON file per container under
// containers/NAME/config.json, and every later command (ps, logs, stop, rm, commit) reads it.
// The one thing a file cannot know is whether the process is still alive: that is asked of the
// kernel each time, by PID and by the PID's start time.
//
// Two rules keep the files true when many commands, and many steps, share one root:
// - Every read-modify-write of a record happens under that container's lock (an flock(2) on its
//   directory), so no command writes back a copy that another one changed meanwhile.
// - A step reads the records of every earlier step (a field a later step adds is optional, and
//   its absence means what the earlier step meant), and refuses those of a later step, which may
//   hold state this step cannot undo.

/// containers/NAME/config.json
struct ContainerRecord: Codable {
    /// The step whose `run` created the container (`step08`); kept when another step rewrites the
    /// record, because it says whose state the container holds. Records from before this field
    /// have none: steps 08 to 10 wrote them, and all three left the same record, layer and cgroup.
    var step: String?
    var id: String
    var name: String
    /// PID 1 of the container, as the host numbers it.
    var pid: Int32
    /// Field 22 of /proc/PID/stat when the container started: tells our process from a later one
    /// that was given the same PID.
    var pidStartTime: UInt64
    var command: [String]
    /// UTC, `2026-11-25 14:55:01`.
    var created: String
    /// What the runtime last knew: `created`, `running` or `exited`. `ps` checks the kernel.
    var status: String
    var image: String
    var volumes: [String]
    var detached: Bool
    /// KEY=VALUE entries the container was started with. Absent (nil) in the records of steps 08
    /// and 09, which had no -e: read that as none.
    var environment: [String]?
    /// Step 11: the network the container joined, its address there and its published ports
    /// (`8080:80/tcp`). Absent for --net none and in records of earlier steps.
    var network: String?
    var ipAddress: String?
    var ports: [String]?
}

/// Names are directory and cgroup names: letters, digits, `_ . -`, not starting with `.` or `-`,
/// at most 64 characters (so `../x` or an empty name can never reach the filesystem).
func validateContainerName(_ name: String) throws {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    guard !name.isEmpty, name.count <= 64, name.first != ".", name.first != "-",
        name.allSatisfy({ allowed.contains($0) })
    else {
        throw UsageError(
            "invalid container name '\(name)' (1-64 of a-z A-Z 0-9 _ . -, not starting with . or -)")
    }
}

func containerDirectory(_ name: String) -> String { Paths.containers + "/\(name)" }
func recordPath(_ name: String) -> String { containerDirectory(name) + "/config.json" }
func logPath(_ name: String) -> String { containerDirectory(name) + "/container.log" }

/// Runs claim names one at a time, under an flock(2) on containers/ itself, from the check of a
/// name until its first record is on disk (see chooseIDAndName). A directory can be locked like a
/// file, so no lock file is left to clean up.
func lockNames() throws -> DirectoryLock {
    try makeDirectories(Paths.containers)
    guard let lock = try lockDirectory(Paths.containers) else {
        throw SyscallError("open \(Paths.containers)", errno: ENOENT)
    }
    return lock
}

/// A new container's ID, and its name (the ID when none is asked for), checked against every
/// container's under lockNames(). `findContainer` looks a word up as a name first, so a name that is
/// another container's ID would shadow that container (`rm ID` would remove the wrong one); for the
/// same reason a fresh ID is never somebody's name.
func chooseIDAndName(_ requested: String?) throws -> (id: String, name: String) {
    let names = try containerNames()
    let ids = names.compactMap(recordedID)
    if let requested, let owner = names.first(where: { recordedID($0) == requested }) {
        throw Failure("container name '\(requested)' is the ID of container '\(owner)' (choose another name)")
    }
    var id = newContainerID()
    while names.contains(id) || ids.contains(id) || id == requested { id = newContainerID() }
    return (id, requested ?? id)
}

/// Claims `name` by creating its directory, and returns holding the container's lock: mkdir(2) is
/// atomic, so of two runs racing for one name exactly one wins (also against a step that predates
/// lockNames()).
func reserveName(_ name: String) throws -> DirectoryLock {
    let directory = containerDirectory(name)
    guard mkdir(directory, 0o700) == 0 else {
        if errno == EEXIST {
            throw Failure(
                "container name '\(name)' is already in use (remove it first: \(toolName) rm -f \(name))")
        }
        throw SyscallError("mkdir \(directory)")
    }
    guard let lock = try lockContainer(name) else {
        throw Failure("container '\(name)' was removed while it was being created")
    }
    return lock
}

/// An exclusive flock(2), released by unlock() or when the holder exits, however it dies: a killed
/// command never leaves a container locked.
final class DirectoryLock {
    private var fd: Int32

    init(_ fd: Int32) { self.fd = fd }
    deinit { unlock() }

    var isHeld: Bool { fd >= 0 }

    func unlock() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}

/// Waits for the lock of containers/NAME; nil when there is no such container (any more).
func lockContainer(_ name: String) throws -> DirectoryLock? {
    try lockDirectory(containerDirectory(name))
}

/// Waits for an exclusive flock(2) on the directory `path`; nil when it does not exist. While we
/// waited, the holder may have removed the directory and a new run may have made another of the
/// same name: the lock counts only on the directory that the path names now.
func lockDirectory(_ path: String) throws -> DirectoryLock? {
    while true {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw SyscallError("open \(path)")
        }
        let lock = DirectoryLock(fd)
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw SyscallError("flock \(path)") }
        }
        var locked = stat()
        var current = stat()
        guard fstat(fd, &locked) == 0 else { throw SyscallError("fstat \(path)") }
        guard lstat(path, &current) == 0 else {
            if errno == ENOENT { return nil }
            throw SyscallError("lstat \(path)")
        }
        if locked.st_dev == current.st_dev && locked.st_ino == current.st_ino { return lock }
        lock.unlock()
    }
}

/// Finds the container `nameOrID`, takes its lock, reads its record afresh and runs `body` on it.
/// Every read-modify-write of a record goes through here: what findContainer saw before the lock
/// may be stale by the time we hold it (a `run` writing the PID, an `rm` and a new `run` of the
/// same name).
func withLockedContainer<T>(_ nameOrID: String, _ body: (ContainerRecord) throws -> T) throws -> T {
    let found = try findContainer(nameOrID)
    guard let lock = try lockContainer(found.name) else { throw Failure("no such container: \(nameOrID)") }
    defer { lock.unlock() }
    let record = try readRecord(found.name)
    guard record.id == found.id else { throw Failure("no such container: \(nameOrID)") }
    return try body(record)
}

/// Writes the record through a temporary file and rename(2), so a reader never sees half a file.
/// The temporary file is named for this process: with one name for every writer, one writer's
/// rename would move into place what another had half written, and the other's rename would fail.
func writeRecord(_ record: ContainerRecord) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let json = String(decoding: try encoder.encode(record), as: UTF8.self) + "\n"
    let path = recordPath(record.name)
    let temporary = "\(path).\(getpid()).tmp"
    do {
        try writeFile(temporary, json, mode: 0o600)
    } catch {
        unlink(temporary)
        throw error
    }
    guard rename(temporary, path) == 0 else { throw SyscallError("rename \(temporary) to \(path)") }
}

/// What any step can read of any record, whoever wrote it: who created it, and its ID.
struct RecordOrigin: Decodable {
    var step: String?
    var id: String?
}

func readRecord(_ name: String) throws -> ContainerRecord {
    let path = recordPath(name)
    let data: Data
    do {
        data = Data(try readFile(path).utf8)
    } catch let error as SyscallError where error.errno == ENOENT {
        throw Failure(
            "container '\(name)' has no record (a run was killed before writing it; remove it with \(toolName) rm -f \(name))"
        )
    }
    guard let origin = try? JSONDecoder().decode(RecordOrigin.self, from: data) else {
        throw Failure("read \(path): not a valid container record")
    }
    if let step = origin.step, !isSameOrEarlierStep(step) {
        let creator = escapeControlCharacters(step)
        throw Failure("container '\(name)' was created by \(creator): manage it with \(creator)")
    }
    guard let record = try? JSONDecoder().decode(ContainerRecord.self, from: data) else {
        throw Failure("read \(path): not a valid container record")
    }
    return record
}

/// Whether this step understands what the step `creator` leaves behind: its own, and every
/// earlier step's, since each step only adds to the last. A later step (or a name that is no
/// step) may hold what this one cannot undo (step 11's network), so it is left to that step.
func isSameOrEarlierStep(_ creator: String) -> Bool {
    // A learner's workbench build of step N is mystepN (README, "Build it yourself").
    func number(_ step: String) -> Int? {
        let name = step.hasPrefix("my") ? step.dropFirst(2) : Substring(step)
        return name.hasPrefix("step") ? Int(name.dropFirst(4)) : nil
    }
    if creator == toolName { return true }
    guard let theirs = number(creator), let ours = number(toolName) else { return false }
    return theirs <= ours
}

/// The ID a record gives, read without judging the rest of it, or nil.
func recordedID(_ name: String) -> String? {
    guard let text = try? readFile(recordPath(name)) else { return nil }
    return (try? JSONDecoder().decode(RecordOrigin.self, from: Data(text.utf8)))?.id
}

/// The record of the container called `nameOrID` (a name, or an ID as `run -d` printed it).
func findContainer(_ nameOrID: String) throws -> ContainerRecord {
    if (try? validateContainerName(nameOrID)) != nil, fileExists(recordPath(nameOrID)) {
        return try readRecord(nameOrID)
    }
    if let name = try containerNames().first(where: { recordedID($0) == nameOrID }) {
        return try readRecord(name)
    }
    throw Failure("no such container: \(nameOrID)")
}

/// Every directory under containers/: one per container, whether its record can be read or not.
func containerNames() throws -> [String] {
    guard isDirectory(Paths.containers) else { return [] }
    return try listDirectory(Paths.containers)
}

/// Field 22 of /proc/PID/stat, the process's start time in clock ticks after boot, and field 3,
/// its state. The command name (field 2) sits in parentheses and may itself contain spaces and
/// parentheses, so the fields are counted from the last `)`.
func processStartTime(_ pid: Int32) -> (startTime: UInt64, state: Character)? {
    guard let stat = try? readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
        return nil
    }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // fields[0] is field 3 (state), so field 22 is fields[19].
    guard fields.count > 19, let start = UInt64(fields[19]), let state = fields[0].first else { return nil }
    return (start, state)
}

/// Running means: the PID exists, it is the same process we started (same start time), and it is
/// not a zombie waiting for its parent to collect it. A PID alone can lie: once the container has
/// exited, the kernel may hand the number to any new process.
func isRunning(_ record: ContainerRecord) -> Bool {
    guard record.pid > 0, let process = processStartTime(record.pid) else { return false }
    return process.startTime == record.pidStartTime && process.state != "Z"
}
