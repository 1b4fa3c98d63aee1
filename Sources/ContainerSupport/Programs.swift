import CContainerSupport
import Glibc

/// Runs a host program (`tar`) to completion. Its stderr is captured, and a failure becomes one line
/// naming the stage and the program's own last complaint, so the one-line error rule holds even
/// for tools that print several lines. With `input`, the program reads it on stdin (`nft -f -`).
public func runProgram(_ argv: [String], stage: String, input: String? = nil) throws {
    var fds: [Int32] = [0, 0]
    guard cs_pipe_cloexec(&fds) == 0 else { throw SyscallError("pipe2") }
    var stdin: [Int32] = [-1, -1]
    if input != nil { guard cs_pipe_cloexec(&stdin) == 0 else { throw SyscallError("pipe2") } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if input != nil {
        posix_spawn_file_actions_adddup2(&actions, stdin[0], 0)
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    let cArgv = CStringArray(argv)
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgv.argv, environ)
    close(fds[1])
    defer { close(fds[0]) }
    if input != nil { close(stdin[0]) }
    guard rc == 0 else {
        if input != nil { close(stdin[1]) }
        throw SyscallError("\(stage): run \(argv[0])", errno: rc)
    }
    if let input {
        // Small inputs only: the whole of it fits the pipe, so the program's stderr cannot fill
        // up while we are still writing.
        var bytes = Array(input.utf8)
        // A program that exits before reading must not kill us with SIGPIPE: EPIPE ends the loop.
        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes {
                write(stdin[1], $0.baseAddress! + offset, $0.count - offset)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            offset += n
        }
        close(stdin[1])
    }
    let output = (try? readAll(fds[0], stage: "read \(argv[0]) output")) ?? ""
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    guard status != 0 else { return }
    // nft follows its "FILE:LINE: Error: ..." line with the offending input and a line of carets.
    let lines = output.split(separator: "\n")
    let error = lines.lazy.compactMap { line in line.firstRange(of: "Error: ").map { line[$0.lowerBound...] }
    }.first
    let complaint = (error ?? lines.last).map { ": " + $0 } ?? ""
    throw Failure("\(stage): \(argv[0]) failed\(complaint)")
}
