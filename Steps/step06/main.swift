// step06: volumes: `-v /host/dir:/data` bind-mounts a host directory into the container, so files
// written there outlive it.
import ContainerSupport

let usage = """
    Usage: \(toolName) COMMAND

    Commands:
      run [-ti] [-m SIZE] [-cpushare N] [-cpuset LIST] [-v SRC:DST]... CMD [ARG...]
                               run CMD in a new busybox container, with limits
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
