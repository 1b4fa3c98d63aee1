import ContainerSupport
import FoundationEssentials
import Glibc

// Without a daemon, nothing stays behind to remember a container after `run -d` returns. So the
// runtime writes down what it started, one JSON file per container under
// containers/NAME/config.json, and every later command (ps, logs, stop, rm, commit) reads it.
// The one thing a file cannot know is whether the process is still alive: that is asked of the
// kernel each time, by PID and by the PID's start time.

/// containers/NAME/config.json
struct ContainerRecord: Codable {
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

/// Claims `name` by creating its directory: mkdir(2) is atomic, so of two runs racing for one name
/// exactly one wins.
func reserveName(_ name: String) throws {
    try makeDirectories(Paths.containers)
    let directory = containerDirectory(name)
    guard mkdir(directory, 0o700) == 0 else {
        if errno == EEXIST {
            throw Failure(
                "container name '\(name)' is already in use (remove it first: \(toolName) rm -f \(name))")
        }
        throw SyscallError("mkdir \(directory)")
    }
}

/// Writes the record through a temporary file and rename(2), so a reader never sees half a file.
func writeRecord(_ record: ContainerRecord) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let json = String(decoding: try encoder.encode(record), as: UTF8.self) + "\n"
    let path = recordPath(record.name)
    try writeFile(path + ".tmp", json, mode: 0o600)
    guard rename(path + ".tmp", path) == 0 else { throw SyscallError("rename \(path).tmp to \(path)") }
}

func readRecord(_ name: String) throws -> ContainerRecord {
    let path = recordPath(name)
    do {
        return try JSONDecoder().decode(ContainerRecord.self, from: Data(try readFile(path).utf8))
    } catch let error as SyscallError {
        throw error
    } catch {
        throw Failure("read \(path): not a valid container record")
    }
}

/// The record of the container called `nameOrID` (a name, or an ID as `run -d` printed it).
func findContainer(_ nameOrID: String) throws -> ContainerRecord {
    if isDirectory(containerDirectory(nameOrID)), fileExists(recordPath(nameOrID)),
        !nameOrID.contains("/")
    {
        return try readRecord(nameOrID)
    }
    if let match = try allRecords().first(where: { $0.id == nameOrID }) { return match }
    throw Failure("no such container: \(nameOrID)")
}

/// Every readable record, oldest first.
func allRecords() throws -> [ContainerRecord] {
    guard isDirectory(Paths.containers) else { return [] }
    return try listDirectory(Paths.containers).compactMap { try? readRecord($0) }.sorted {
        $0.created < $1.created
    }
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

/// Now, in UTC, as records store it.
func timestamp() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A fresh container ID: 12 hex digits, like docker's short IDs.
func newContainerID() -> String {
    let digits = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    return String((String(repeating: "0", count: 16) + digits).suffix(12))
}
