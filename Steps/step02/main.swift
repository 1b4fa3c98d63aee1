// step02: `run` starts a container in new UTS, PID, mount, network and IPC namespaces; `init` is
// the same binary, re-executed inside them, which mounts /proc and becomes the user's command.
import ContainerSupport

let usage = """
    Usage: \(toolName) COMMAND

    Commands:
      run [-ti] CMD [ARG...]   run CMD in a new container
    """

runMain {
    let arguments = Array(CommandLine.arguments.dropFirst())
    switch arguments.first {
    case "run":
        return try run(Array(arguments.dropFirst()))
    case "init":
        try initContainer(Array(arguments.dropFirst()))
    case "--help", "-h":
        printOutput(usage + "\n")
        return 0
    case nil:
        throw UsageError("no command given (try: \(toolName) run -ti sh)")
    case let other?:
        throw UsageError("unknown command '\(other)' (try: \(toolName) --help)")
    }
}
