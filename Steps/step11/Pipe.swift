import CContainerSupport
import ContainerSupport
import Glibc

// The command travels from the runtime to init over a pipe, not on init's command line. On the
// command line it would be visible in `ps` as `init -- ...` until the exec, it is bounded by
// ARG_MAX, and the mydocker tutorial packed it into one string that init split on spaces, which
// broke `sh -c 'echo "a  b"'`. Over the pipe each argument goes as bytes ending in NUL (a byte no
// argument can contain, so nothing needs quoting), and the pipe doubles as the go signal: init
// reads until end-of-file, which comes only after the runtime has put it into its cgroup.

/// The pipe the command travels on. Both ends are O_CLOEXEC; the child's copy of the read end is
/// dup2'ed to fd 3, the one fd init inherits on purpose.
func makeCommandPipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    guard cs_pipe_cloexec(&fds) == 0 else { throw SyscallError("pipe2") }
    return (fds[0], fds[1])
}

/// Parent side: the environment's KEY=VALUE entries, an empty entry, then the command, each followed
/// by a NUL (an environment entry is never empty, so the first empty one ends the environment). The
/// caller closes the write end afterwards, which is what init's read-to-end-of-file waits for.
func sendCommand(_ command: [String], environment: [String], to fd: Int32) throws {
    var bytes: [UInt8] = []
    for entry in environment + [""] + command {
        bytes.append(contentsOf: entry.utf8)
        bytes.append(0)
    }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw SyscallError("write the command to the pipe") }
        offset += n
    }
}

/// Init side: read fd 3 to end-of-file and split at the NULs into the environment and the command.
/// Nothing at all means the runtime exited before it released us.
func readCommand() throws -> (command: [String], environment: [String]) {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(3, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw SyscallError("read the command pipe (fd 3)") }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[..<n])
    }
    close(3)
    guard bytes.last == 0 else { throw UsageError("the runtime exited before it sent the command") }
    let entries = bytes.dropLast().split(separator: 0, omittingEmptySubsequences: false).map {
        String(decoding: $0, as: UTF8.self)
    }
    guard let end = entries.firstIndex(of: ""), end + 1 < entries.count else {
        throw UsageError("the runtime sent no command")
    }
    return (Array(entries[(end + 1)...]), Array(entries[..<end]))
}
