import CContainerSupport
import Glibc

/// Runs a host program (`tar`) to completion. Its stderr is captured, and a failure becomes one line
/// naming the stage and the program's own last complaint, so the one-line error rule holds even
/// for tools that print several lines.
public func runProgram(_ argv: [String], stage: String) throws {
    var fds: [Int32] = [0, 0]
    guard cs_pipe_cloexec(&fds) == 0 else { throw SyscallError("pipe2") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    let cArgv = CStringArray(argv)
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgv.argv, environ)
    close(fds[1])
    defer { close(fds[0]) }
    guard rc == 0 else { throw SyscallError("\(stage): run \(argv[0])", errno: rc) }
    let output = (try? readAll(fds[0], stage: "read \(argv[0]) output")) ?? ""
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    guard status != 0 else { return }
    let complaint = output.split(separator: "\n").last.map { ": " + $0 } ?? ""
    throw Failure("\(stage): \(argv[0]) failed\(complaint)")
}
