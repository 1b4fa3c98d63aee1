import CContainerSupport
import ContainerSupport
import Glibc

/// Moves this process into a new UTS namespace, then becomes `command`.
///
/// unshare(2) changes the namespaces of the calling process itself, so no child is needed: after
/// it, sethostname(2) inside writes to a copy of the host's hostname. The exec keeps the new
/// namespace, and the command's exit code is this process's exit code.
func execInNewUTSNamespace(_ command: [String]) throws -> Never {
    guard cs_unshare(CLONE_NEWUTS) == 0 else { throw SyscallError("unshare CLONE_NEWUTS") }
    let argv = CStringArray(command)
    execvp(command[0], argv.argv)
    // Still here: the exec failed. Exit like a shell would: 127 not found, 126 found but not runnable.
    let error = SyscallError("exec \(command[0])")
    printError("\(error)")
    exit(error.errno == ENOENT ? 127 : 126)
}
